package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Paths every test uses, set by TestMain.
var (
	// repoRoot is the module's top folder.
	repoRoot string
	// egretBin is the binary built from ./cmd/egret for this run.
	egretBin string
)

// TestMain builds the binary once for all tests, so each one runs
// exactly what an operator would install.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	repoRoot = root

	dir, err := os.MkdirTemp("", "egret-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	egretBin = filepath.Join(dir, "egret")
	build := exec.Command("go", "build", "-o", egretBin, "./cmd/egret")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build ./cmd/egret: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
