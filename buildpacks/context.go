package buildpacks

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ErrContextTooLarge is wrapped when a build context exceeds its size or
// entry limit.
var ErrContextTooLarge = errors.New("build context too large")

// ErrUnsafePath is wrapped when a build context holds an entry that could
// write or point outside its directory, or one that is not a plain file,
// directory or link (devices, fifos).
var ErrUnsafePath = errors.New("unsafe path in build context")

// maxContextEntries bounds the number of entries of a build context, so that
// millions of empty files cannot exhaust inodes under the byte limit.
const maxContextEntries = 1 << 20

// maxSymlinkHops is how many symlinks one resolution may follow, as Linux's
// MAXSYMLINKS; more is a loop.
const maxSymlinkHops = 40

// ExtractContext unpacks a build context, a tar stream such as
// `git archive --format=tar` writes, into dir (created if missing).
//
// It is written for untrusted input. The regular files' total size may not
// exceed maxBytes (ErrContextTooLarge; callers name their setting when they
// wrap it). Entries with absolute names or '..' components, symlinks that are
// absolute or resolve outside dir (following the symlinks already in the
// tree, relative to the link's own directory), hard links to anything but a
// regular file in the tree, and device or fifo entries are refused with
// ErrUnsafePath. Nothing is ever written through a symlink: an entry whose
// parent is a symlink is refused, and an existing file or link is replaced,
// not opened. pax global headers (git archive's commit id) are skipped.
// Ownership is not restored; files are 0644, or 0755 when any execute bit is
// set, and directories 0755.
//
// On error dir is left partly written; the caller removes it.
func ExtractContext(r io.Reader, dir string, maxBytes int64) error {
	if maxBytes <= 0 {
		return fmt.Errorf("extract build context: maxBytes must be positive, got %d", maxBytes)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("extract build context: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract build context: %w", err)
	}
	defer root.Close()

	x := extractor{root: root, dirs: map[string]bool{}}
	tr := tar.NewReader(r)
	var total int64
	for entries := 0; ; entries++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("extract build context: read tar: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if entries >= maxContextEntries {
			return fmt.Errorf("%w: more than %d entries", ErrContextTooLarge, maxContextEntries)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "" { // the root itself ("./")
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = x.dir(name)
		case tar.TypeReg:
			if hdr.Size > maxBytes-total {
				return fmt.Errorf("%w: it is larger than the limit of %s (reached at %q); "+
					"make the repository smaller (keep large files out of git) or raise the build context size limit",
					ErrContextTooLarge, humanBytes(maxBytes), name)
			}
			total += hdr.Size
			err = x.file(name, hdr, tr)
		case tar.TypeSymlink:
			err = x.symlink(name, hdr.Linkname)
		case tar.TypeLink:
			err = x.hardlink(name, hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return fmt.Errorf("%w: %q is a device or fifo", ErrUnsafePath, name)
		default:
			return fmt.Errorf("%w: %q has unsupported tar entry type %q", ErrUnsafePath, name, hdr.Typeflag)
		}
		if err != nil {
			return err
		}
	}
	// Each symlink was checked on its own when written; links written later
	// can change where an earlier one leads, so check them all again now
	// that the tree is complete.
	for _, name := range x.links {
		if err := checkResolves(root, name); err != nil {
			return err
		}
	}
	return nil
}

// entryName validates a tar entry name and returns it cleaned, relative to
// the context root; "" is the root itself.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("%w: entry with an empty name", ErrUnsafePath)
	}
	if strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("%w: %q is an absolute path", ErrUnsafePath, raw)
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q has a '..' component", ErrUnsafePath, raw)
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", nil
	}
	return name, nil
}

type extractor struct {
	root  *os.Root
	dirs  map[string]bool // directories known to be real directories
	links []string        // symlinks written, checked again at the end
}

// parents makes sure every parent of name is a real directory, creating
// missing ones, and refuses to go through a symlink.
func (x *extractor) parents(name string) error {
	dir := path.Dir(name)
	if dir == "." || x.dirs[dir] {
		return nil
	}
	if err := x.parents(dir); err != nil {
		return err
	}
	fi, err := x.root.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("extract build context: %w", err)
		}
	case err != nil:
		return fmt.Errorf("extract build context: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %q would be written through the symlink %q", ErrUnsafePath, name, dir)
	case !fi.IsDir():
		return fmt.Errorf("extract build context: %q: parent %q is not a directory", name, dir)
	}
	x.dirs[dir] = true
	return nil
}

// clear prepares name for a new non-directory entry: a later tar entry
// replaces an earlier one, but never a directory, and an existing link is
// removed rather than written through.
func (x *extractor) clear(name string) error {
	if err := x.parents(name); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("extract build context: %w", err)
	case fi.IsDir():
		return fmt.Errorf("extract build context: %q is both a directory and a file", name)
	}
	if err := x.root.Remove(name); err != nil {
		return fmt.Errorf("extract build context: %w", err)
	}
	return nil
}

func (x *extractor) dir(name string) error {
	if x.dirs[name] {
		return nil
	}
	if err := x.parents(name); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(name, 0o755); err != nil {
			return fmt.Errorf("extract build context: %w", err)
		}
	case err != nil:
		return fmt.Errorf("extract build context: %w", err)
	case !fi.IsDir(): // a file or a symlink (possibly to a directory)
		return fmt.Errorf("%w: directory %q would replace a file or symlink", ErrUnsafePath, name)
	}
	x.dirs[name] = true
	return nil
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader) error {
	if err := x.clear(name); err != nil {
		return err
	}
	perm := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		perm = 0o755
	}
	// O_EXCL: the name was just cleared, so this never opens an existing
	// file or follows a link planted under it.
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("extract build context: %w", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extract build context: write %q: %w", name, err)
	}
	if !hdr.ModTime.IsZero() {
		// Keeps the tree's times reproducible (git archive uses the commit
		// time), which keeps build caches warm.
		_ = x.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

func (x *extractor) symlink(name, target string) error {
	if target == "" {
		return fmt.Errorf("%w: symlink %q has an empty target", ErrUnsafePath, name)
	}
	if path.IsAbs(target) {
		return fmt.Errorf("%w: symlink %q -> %q is absolute", ErrUnsafePath, name, target)
	}
	if escapesLexically(path.Join(path.Dir(name), target)) {
		return fmt.Errorf("%w: symlink %q -> %q points outside the build context", ErrUnsafePath, name, target)
	}
	if err := x.clear(name); err != nil {
		return err
	}
	if err := x.root.Symlink(target, name); err != nil {
		return fmt.Errorf("extract build context: %w", err)
	}
	x.links = append(x.links, name)
	return nil
}

func (x *extractor) hardlink(name, target string) error {
	old, err := entryName(target)
	if err != nil {
		return err
	}
	if old == "" {
		return fmt.Errorf("%w: hard link %q points at the context root", ErrUnsafePath, name)
	}
	fi, err := x.root.Lstat(old)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: hard link %q -> %q: target is not a regular file earlier in the context", ErrUnsafePath, name, target)
	}
	if err := x.clear(name); err != nil {
		return err
	}
	if err := x.root.Link(old, name); err != nil {
		return fmt.Errorf("extract build context: %w", err)
	}
	return nil
}

func escapesLexically(cleaned string) bool {
	return cleaned == ".." || strings.HasPrefix(cleaned, "../")
}

// checkResolves follows the symlink name the way the kernel would, through
// the symlinks of the tree, and fails if it ever leaves the root. A lexical
// check of each link alone is not enough: "a/s -> ../.." is harmless by
// itself, but "a/b/e -> ../s/.." climbs above the root once s is followed.
func checkResolves(root *os.Root, name string) error {
	var at []string // resolved directory components, all real directories
	if d := path.Dir(name); d != "." {
		at = strings.Split(d, "/")
	}
	target, err := root.Readlink(name)
	if err != nil {
		return fmt.Errorf("extract build context: %w", err)
	}
	todo := strings.Split(target, "/")
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return fmt.Errorf("%w: symlink %q -> %q resolves outside the build context", ErrUnsafePath, name, target)
			}
			at = at[:len(at)-1]
			continue
		}
		p := path.Join(append(at, c)...)
		fi, err := root.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// A missing name cannot redirect what follows it, and a file or
			// directory is taken as it is: the rest is lexical.
			at = append(at, c)
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return fmt.Errorf("%w: symlink %q: too many levels of symlinks", ErrUnsafePath, name)
		}
		next, err := root.Readlink(p)
		if err != nil {
			return fmt.Errorf("extract build context: %w", err)
		}
		if path.IsAbs(next) {
			return fmt.Errorf("%w: symlink %q leads through the absolute symlink %q", ErrUnsafePath, name, p)
		}
		todo = append(strings.Split(next, "/"), todo...)
	}
	return nil
}

// writeContext writes dir as a tar stream for a Docker build, honouring
// dir's .dockerignore, and then adds the extra files (which replace any file
// of the same name in dir). Symlinks are archived as symlinks, never
// followed.
func writeContext(ctx context.Context, w io.Writer, dir string, extra map[string][]byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	ignore, err := readDockerignore(root)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		if _, ok := extra[name]; ok {
			return nil
		}
		if ignore.excludes(name) {
			if d.IsDir() && !ignore.hasExceptions() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, ModTime: fi.ModTime(), Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, fi.Size(), int64(fi.Mode().Perm())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(name)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		default:
			return fmt.Errorf("%q: cannot put a %s in a build context", name, fi.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		// Exactly the size announced: a file growing meanwhile must not
		// corrupt the stream.
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive build context: %w", err)
	}
	for _, name := range sortedKeys(extra) {
		data := extra[name]
		hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("archive build context: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("archive build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive build context: %w", err)
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
