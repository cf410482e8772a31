package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestServeHelpNamesTheImportFile renders "egret serve --help" and
// checks that --import reads as taking a FILE, with its usage intact.
func TestServeHelpNamesTheImportFile(t *testing.T) {
	var out bytes.Buffer
	a := &app{stdout: &out, stderr: &out, stdin: strings.NewReader("")}
	root := a.root()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"serve", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatalf("serve --help: %v\n%s", err, out.String())
	}
	var line string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "--import") {
			line = l
		}
	}
	if !regexp.MustCompile(`^\s+--import FILE\s+import the OA snapshot in FILE before serving`).MatchString(line) ||
		strings.Contains(line, "`") {
		t.Fatalf("the --import line reads %q; want \"--import FILE   import the OA snapshot in FILE ...\"\n%s",
			line, out.String())
	}
}
