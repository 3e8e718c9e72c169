// compose-check loads a Compose file the way `docker compose config` does (compose-spec/compose-go: the Compose
// Specification's JSON schema, interpolation, merge keys, then the model's own consistency checks) and prints the
// resolved project as JSON. It exists because no Docker engine, and no compose plugin, is available where
// `make test` runs; see test/unit/stack/docker-compose.unit.test.ts.
//
//	compose-check FILE   exit 0 and the project on stdout, or exit 1 and the error on stderr
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE")
		os.Exit(2)
	}
	file, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithOsEnv, cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithConsistency(true), cli.WithResolvedPaths(true))
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
