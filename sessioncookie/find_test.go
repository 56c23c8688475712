package sessioncookie

import (
	"net/http"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; b=2; ; bad name=3", "a=4;c"}}
	got := slices.Collect(Names(h))
	want := []string{"a", "b", "a", "c"}
	if !slices.Equal(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	// Stopping early must stop the iteration.
	for name := range Names(h) {
		if name != "a" {
			t.Fatalf("first name = %q", name)
		}
		break
	}
}
