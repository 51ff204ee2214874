// Package kubepatch builds the merge patches the harness applies to its
// own pods' metadata. The runner talks to a probe or to the DNS resolver
// through an annotation the kubelet projects into a downward API file,
// and updates a pod to make its kubelet sync it; each is one annotation.
package kubepatch

import "encoding/json"

// Annotation is the merge patch (types.MergePatchType) that sets one
// annotation of an object to value.
func Annotation(key, value string) []byte {
	// Marshalling maps of strings cannot fail.
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	return b
}
