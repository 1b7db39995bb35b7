package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Helpers for an operator's directory of Pebble checkpoints, shared by
// StateDB and dedupe: both keep a live database, checkpoints named
// <prefix><id, 20 digits> and a metadata file in each.

// CheckpointIDs lists the ids of the checkpoints named prefix+id in dir,
// oldest first; a missing dir has none.
func CheckpointIDs(fs vfs.FS, dir, prefix string) ([]uint64, error) {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var ids []uint64
	for _, n := range names {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// SyncDir makes renames and removals in dir durable.
func SyncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ClonePebbleCheckpoint makes dst a private copy of the Pebble checkpoint
// src, leaving out the files named in skip (the operator's own): sstables
// and blob files (immutable) are hard-linked, everything Pebble may append
// to or rewrite (manifest, options, markers) is copied, so that the
// checkpoint stays exactly as it was written however the copy is used.
func ClonePebbleCheckpoint(fs vfs.FS, src, dst string, skip ...string) error {
	if err := fs.RemoveAll(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dst, err)
	}
	if err := fs.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	names, err := fs.List(src)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, n := range names {
		if slices.Contains(skip, n) {
			continue
		}
		from, to := fs.PathJoin(src, n), fs.PathJoin(dst, n)
		if strings.HasSuffix(n, ".sst") || strings.HasSuffix(n, ".blob") {
			err = vfs.LinkOrCopy(fs, from, to)
		} else {
			err = vfs.Copy(fs, from, to)
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", n, err)
		}
	}
	return nil
}

// ReadJSONFile decodes the file name in dir into v; found is false when
// there is no such file.
func ReadJSONFile(fs vfs.FS, dir, name string, v any) (found bool, err error) {
	f, err := fs.Open(fs.PathJoin(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s in %s: %w", name, dir, err)
	}
	return true, nil
}

// WriteJSONFile writes v as the file name in dir and makes both the file
// and its directory entry durable, so that dir may then be renamed into
// place.
func WriteJSONFile(fs vfs.FS, dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	f, err := fs.Create(fs.PathJoin(dir, name), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return SyncDir(fs, dir)
}
