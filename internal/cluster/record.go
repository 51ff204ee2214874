package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Record is what idharness keeps about a cluster it created, in
// <cache>/clusters/<name>/cluster.json. It is written before kind starts, so
// `delete --all` finds clusters whose creation was interrupted.
type Record struct {
	// Name is the cluster name.
	Name string `json:"name"`
	// NodeImage is the node image it was created with.
	NodeImage string `json:"nodeImage"`
	// Kubeconfig is where its kubeconfig was written.
	Kubeconfig string `json:"kubeconfig"`
	// Workers is its number of worker nodes.
	Workers int `json:"workers"`
	// Created is when creation started.
	Created time.Time `json:"created"`
}

func recordDir(cacheDir, name string) string { return filepath.Join(cacheDir, "clusters", name) }

func writeRecord(cacheDir string, r Record) error {
	dir := recordDir(cacheDir, r.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record cluster %s: %w", r.Name, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cluster.json"), b, 0o644)
}

// Records returns the clusters recorded under cacheDir.
func Records(cacheDir string) ([]Record, error) {
	matches, err := filepath.Glob(filepath.Join(cacheDir, "clusters", "*", "cluster.json"))
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal(b, &r) == nil && r.Name != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

func removeRecord(cacheDir, name string) error {
	return os.RemoveAll(recordDir(cacheDir, name))
}
