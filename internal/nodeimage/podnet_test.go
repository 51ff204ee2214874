package nodeimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPodnetScript runs one round of the idharness-podnet script against
// fake kubectl and ip commands: it must write the CNI config for this node's
// podCIDR, route the other nodes' ranges via their addresses, and skip nodes
// that have no podCIDR yet.
func TestPodnetScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not available")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "podnet.sh")
	src, err := assets.ReadFile("assets/idharness-podnet.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(script, src, 0o755)
	routes := filepath.Join(dir, "routes.log")
	// kubectl prints what the script's jsonpath yields: name|podCIDR|InternalIP.
	os.WriteFile(filepath.Join(bin, "kubectl"), []byte("#!/bin/sh\nprintf '%s\\n' 'cp|10.244.0.0/24|172.30.1.2' 'w1||172.30.1.3' 'w2|10.244.2.0/24|172.30.1.4' 'w3|10.244.3.0/24|'\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "ip"), []byte("#!/bin/sh\n[ \"$2\" = show ] && exit 0\necho \"$*\" >>"+routes+"\n"), 0o755)
	// iptables logs its arguments; -C (check) reports "absent".
	rules := filepath.Join(dir, "iptables.log")
	os.WriteFile(filepath.Join(bin, "iptables"), []byte("#!/bin/sh\nfor a; do [ \"$a\" = -C ] && exit 1; done\necho \"$*\" >>"+rules+"\n"), 0o755)
	kubeconfig := filepath.Join(dir, "kubelet.conf")
	os.WriteFile(kubeconfig, []byte("x"), 0o600)
	conf := filepath.Join(dir, "net.d", "10-idharness.conflist")
	os.MkdirAll(filepath.Dir(conf), 0o755)

	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"),
		"IDH_PODNET_ONCE=1", "IDH_PODNET_NODE=cp", "IDH_PODNET_KUBECONFIG="+kubeconfig, "IDH_PODNET_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatalf("no CNI config written: %v\n%s", err, out)
	}
	if !strings.Contains(string(b), `"subnet": "10.244.0.0/24"`) || !strings.Contains(string(b), `"type": "portmap"`) ||
		!strings.Contains(string(b), `"ipMasq": false`) {
		t.Errorf("CNI config:\n%s", b)
	}
	r, _ := os.ReadFile(routes)
	if got := strings.TrimSpace(string(r)); got != "route replace 10.244.2.0/24 via 172.30.1.4" {
		t.Errorf("routes = %q (want only w2: w1 has no podCIDR, w3 no address)", got)
	}
	ipt, _ := os.ReadFile(rules)
	wantRules := strings.Join([]string{
		"-t nat -N IDH-PODNET-MASQ",
		"-t nat -F IDH-PODNET-MASQ",
		"-t nat -A IDH-PODNET-MASQ -d 10.244.0.0/24 -j RETURN",
		"-t nat -A IDH-PODNET-MASQ -d 10.244.2.0/24 -j RETURN",
		"-t nat -A IDH-PODNET-MASQ -d 10.244.3.0/24 -j RETURN",
		"-t nat -A IDH-PODNET-MASQ ! -d 224.0.0.0/4 -j MASQUERADE",
		"-t nat -A POSTROUTING -s 10.244.0.0/24 -j IDH-PODNET-MASQ",
	}, "\n")
	if got := strings.TrimSpace(string(ipt)); got != wantRules {
		t.Errorf("iptables calls:\n%s\nwant:\n%s", got, wantRules)
	}
}
