//go:build race

package e2e

// raceBuild makes the sluice binary under test carry the race detector too
// when the tests run with -race, so crash and stop tests also hunt races
// in the real process.
const raceBuild = true
