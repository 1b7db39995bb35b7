package dedupe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// keyFilter is a fixed-size blocked bloom filter over every state key ever
// written. A key it has never seen cannot be in Pebble, so its lookup is
// skipped: with random keys (UUIDs) most keys of an insert-heavy stream lie
// below the table's largest key, and a Pebble lookup of an absent key still
// costs several microseconds (memtable seeks, a filter probe per L0
// sublevel and level), against one cache miss here.
//
// The size is fixed, so memory stays bounded: past the key count it was
// sized for (about 13 bits a key at its default size and 10M keys) the
// false-positive rate climbs and the filter gracefully stops saving
// lookups; it never causes a wrong decision, since a key it has seen is
// always looked up. Deleted and expired keys stay in it (false positives
// only). Each 64-byte block holds all probes of a key: one cache miss per
// check.
type keyFilter struct {
	blocks []filterBlock
}

type filterBlock [8]uint64

// filterProbes is the number of bits set per key. Four is optimal near 6-8
// bits per key and close to it on both sides (0.5% false positives at 13
// bits a key, 3% at 6).
const filterProbes = 4

func newKeyFilter(size int64) *keyFilter {
	n := max(size/64, 1)
	return &keyFilter{blocks: make([]filterBlock, n)}
}

// keyHash is the hash the filter (and the pending writes) use for a key.
func keyHash(key []byte) uint64 { return xxhash.Sum64(key) }

func (f *keyFilter) locate(h uint64) *filterBlock {
	// Multiply-shift maps the high half onto the block count without a
	// division; the low half picks the bits inside the block.
	hi, _ := bits.Mul64(h, uint64(len(f.blocks)))
	return &f.blocks[hi]
}

func (f *keyFilter) add(key []byte) { f.addHash(keyHash(key)) }

func (f *keyFilter) addHash(h uint64) {
	b := f.locate(h)
	for i := range filterProbes {
		bit := (h >> (9 * i)) & 511
		b[bit>>6] |= 1 << (bit & 63)
	}
}

func (f *keyFilter) mayContain(key []byte) bool { return f.mayContainHash(keyHash(key)) }

// mayContainHash is mayContain of the key whose keyHash is h.
func (f *keyFilter) mayContainHash(h uint64) bool {
	b := f.locate(h)
	for i := range filterProbes {
		bit := (h >> (9 * i)) & 511
		if b[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
	}
	return true
}

// filterFile holds the filter in each checkpoint directory:
// "DDKF", uint32 version, uint64 block count, the blocks, crc32c of all
// that.
const filterFile = "DEDUPE-FILTER"

var (
	filterMagic = []byte("DDKF")
	crcTable    = crc32.MakeTable(crc32.Castagnoli)
	errFilter   = errors.New("dedupe: unusable key filter file")
)

func (f *keyFilter) write(fs vfs.FS, dir string) error {
	file, err := fs.Create(fs.PathJoin(dir, filterFile), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("dedupe: write key filter: %w", err)
	}
	// Streamed: a checkpoint should not allocate the filter's size again.
	crc := crc32.New(crcTable)
	// The checksum sees each buffer first: a writer may not modify what
	// it is given, but Pebble's MemFS scribbles over it in invariant
	// builds to catch callers that rely on that.
	w := bufio.NewWriterSize(io.MultiWriter(crc, file), 1<<16)
	var word [8]byte
	_, _ = w.Write(filterMagic)
	_, _ = w.Write(binary.LittleEndian.AppendUint32(word[:0], 1))
	_, _ = w.Write(binary.LittleEndian.AppendUint64(word[:0], uint64(len(f.blocks))))
	for i := range f.blocks {
		for _, x := range f.blocks[i] {
			_, _ = w.Write(binary.LittleEndian.AppendUint64(word[:0], x))
		}
	}
	err = w.Flush()
	if err == nil {
		_, err = file.Write(binary.LittleEndian.AppendUint32(word[:0], crc.Sum32()))
	}
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dedupe: write key filter: %w", err)
	}
	return nil
}

// readKeyFilter loads the filter of a checkpoint. It returns errFilter
// (wrapped) when the file is missing, damaged or of another size than
// wanted; the caller then rebuilds the filter from the state.
func readKeyFilter(fs vfs.FS, dir string, size int64) (*keyFilter, error) {
	file, err := fs.Open(fs.PathJoin(dir, filterFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errFilter, err)
	}
	defer file.Close()
	buf, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errFilter, err)
	}
	want := newKeyFilter(size)
	if len(buf) != 16+len(want.blocks)*64+4 || string(buf[:4]) != string(filterMagic) ||
		binary.LittleEndian.Uint32(buf[4:]) != 1 || binary.LittleEndian.Uint64(buf[8:]) != uint64(len(want.blocks)) {
		return nil, fmt.Errorf("%w: header or size", errFilter)
	}
	body := buf[:len(buf)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(buf[len(buf)-4:]) {
		return nil, fmt.Errorf("%w: checksum", errFilter)
	}
	body = body[16:]
	for i := range want.blocks {
		for j := range want.blocks[i] {
			want.blocks[i][j] = binary.LittleEndian.Uint64(body)
			body = body[8:]
		}
	}
	return want, nil
}
