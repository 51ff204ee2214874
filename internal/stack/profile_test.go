package stack

import (
	"slices"
	"testing"
)

func TestProfileComponents(t *testing.T) {
	var defaults []string
	for _, c := range Components() {
		if c.Default {
			defaults = append(defaults, c.Name)
		}
	}
	tests := []struct {
		profile string
		want    []string // nil: the run's defaults (nil)
		wantErr bool
	}{
		{profile: "", want: nil},
		{profile: "imds", want: nil},
		{profile: "reference", want: append(slices.Clone(defaults), NodeAgentComponent)},
		{profile: "aad-pod-identity", want: append(slices.Clone(defaults), AADNMIComponent)},
		{profile: "nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			got, err := ProfileComponents(tt.profile)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("components %v, want %v", got, tt.want)
			}
			if _, err := Selected(got); err != nil {
				t.Errorf("the run cannot select them: %v", err)
			}
		})
	}
}
