package bench

import (
	"testing"

	"github.com/sluice-cdc/sluice/internal/testinfra"
)

// TestMain stops the MariaDB server the MySQL benchmarks start, whatever
// their outcome, and removes its directory.
func TestMain(m *testing.M) { testinfra.Main(m) }
