// Command hello stands in for idharness in the release tests: it prints
// the version linked in with -X main.version.
package main

import "fmt"

var version = "unset"

func main() { fmt.Println(version) }
