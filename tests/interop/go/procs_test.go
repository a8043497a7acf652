package interop

// Child processes driven line by line over stdin/stdout: the Python and C
// providers and consumers of tests/interop speak that way.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// line is one line a child printed, with when it was read.
type line struct {
	at   time.Time
	text string
}

type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	lines   []line
	changed chan struct{} // closed and replaced whenever a line arrives or stdout ends
	ended   bool          // stdout reached EOF
	stderr  bytes.Buffer
	stopped bool
}

// env is what every child gets: ours (REGISTRY_ENDPOINTS, REGISTRY_TTL) plus
// the generated Python stubs on PYTHONPATH.
func childEnv() []string {
	env := os.Environ()
	if stubs := os.Getenv("INTEROP_PYTHONPATH"); stubs != "" {
		path := stubs
		if old := os.Getenv("PYTHONPATH"); old != "" {
			path += string(os.PathListSeparator) + old
		}
		env = append(env, "PYTHONPATH="+path)
	}
	return env
}

// startProc starts a child and reads its stdout in the background; the
// test's cleanup stops it (stdin closed, then SIGKILL after 5 s).
func startProc(t *testing.T, name string, exe string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, changed: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = childEnv()
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s (%s): %v", name, exe, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

func pythonProc(t *testing.T, name string, script string, args ...string) *proc {
	t.Helper()
	python := os.Getenv("INTEROP_PYTHON")
	full := append([]string{"-u", filepath.Join(os.Getenv("INTEROP_DIR"), "python", script)}, args...)
	return startProc(t, name, python, full...)
}

func cProc(t *testing.T, name string, program string, args ...string) *proc {
	t.Helper()
	return startProc(t, name, filepath.Join(os.Getenv("INTEROP_BIN"), program), args...)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) read(stdout io.Reader) {
	scanner := bufio.NewScanner(stdout)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, line{at: time.Now(), text: scanner.Text()})
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.ended = true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// mark is the number of lines read so far: a starting point for waitLine.
func (p *proc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// waitLine waits for a line from index `from` on that `match` accepts and
// returns its index and the line; the test fails after `limit`.
func (p *proc) waitLine(from int, limit time.Duration, what string, match func(string) bool) (int, line) {
	p.t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i].text) {
				l := p.lines[i]
				p.mu.Unlock()
				return i, l
			}
		}
		from = len(p.lines)
		ended, changed := p.ended, p.changed
		p.mu.Unlock()
		if ended {
			p.t.Fatalf("%s exited before printing %s:\n%s", p.name, what, p.output())
		}
		select {
		case <-changed:
		case <-deadline.C:
			p.t.Fatalf("%s did not print %s within %v:\n%s", p.name, what, limit, p.output())
		}
	}
}

// expect waits for a line starting with prefix.
func (p *proc) expect(from int, limit time.Duration, prefix string) (int, line) {
	p.t.Helper()
	return p.waitLine(from, limit, fmt.Sprintf("%q", prefix), func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// linesFrom returns the text of the lines read from index `from` on.
func (p *proc) linesFrom(from int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines[min(from, len(p.lines)):] {
		out = append(out, l.text)
	}
	return out
}

func (p *proc) send(command string) time.Time {
	p.t.Helper()
	at := time.Now()
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		p.t.Fatalf("telling %s %q: %v", p.name, command, err)
	}
	return at
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString("  | " + l.text + "\n")
	}
	if p.stderr.Len() > 0 {
		b.WriteString("  stderr:\n")
		for _, s := range strings.Split(strings.TrimRight(p.stderr.String(), "\n"), "\n") {
			b.WriteString("  ! " + s + "\n")
		}
	}
	return b.String()
}

// sigkill kills the child (by its PID, which we started) and reaps it.
func (p *proc) sigkill() time.Time {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	at := time.Now()
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = p.cmd.Wait()
	return at
}

// quit asks the child to finish ("quit", then stdin closed) and waits for
// it to exit on its own within `limit`; it fails the test otherwise.
func (p *proc) quit(limit time.Duration) {
	p.t.Helper()
	_, _ = io.WriteString(p.stdin, "quit\n")
	_ = p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		if err != nil {
			p.t.Fatalf("%s exited with %v:\n%s", p.name, err, p.output())
		}
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-done
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		p.t.Fatalf("%s did not exit within %v of quit:\n%s", p.name, limit, p.output())
	}
}

// exitCode waits (at most `limit`) for a child that exits by itself.
func (p *proc) exitCode(limit time.Duration) int {
	p.t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	return p.cmd.ProcessState.ExitCode()
}

// stop ends the child if it still runs: stdin closed (it quits by itself),
// SIGKILL after 5 s.
func (p *proc) stop() {
	p.mu.Lock()
	stopped := p.stopped
	p.stopped = true
	p.mu.Unlock()
	if stopped {
		return
	}
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
