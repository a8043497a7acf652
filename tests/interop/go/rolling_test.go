package interop

// A rolling restart under `registry run`: three Go Greeter servers that do
// not register themselves, each wrapped by `registry run --drain 1` (the
// command this workspace builds, INTEROP_REGISTRY), are restarted one
// after another while a Go consumer calls them through etcd's resolver
// with round robin. Not one call may fail: `registry` deletes the key,
// the resolver drops the address, and only after the drain does the
// server hear SIGTERM and stop gracefully; the new one is registered
// once its gRPC health check passes.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	pb "google.golang.org/grpc/examples/helloworld/helloworld"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// rollingName is the service the rolling restart registers (run.py checks
// that nothing is left under it).
const rollingName = "micro-rolling"

// greeterAddrEnv, when set, makes this test binary a Greeter server on that
// address instead of running tests (see TestMain): what `registry run` wraps.
const greeterAddrEnv = "INTEROP_GREETER_ADDR"

type greeter struct {
	pb.UnimplementedGreeterServer
	addr string
}

func (g greeter) SayHello(_ context.Context, req *pb.HelloRequest) (*pb.HelloReply, error) {
	return &pb.HelloReply{Message: fmt.Sprintf("Hello %s from %s pid %d", req.GetName(), g.addr, os.Getpid())}, nil
}

// serveGreeter serves the Greeter and grpc.health.v1 (SERVING) on addr
// until SIGTERM or SIGINT, then stops gracefully (calls in flight finish)
// and returns 0. It registers nothing: `registry run` does. It exits by
// itself after 10 minutes whatever happens.
func serveGreeter(addr string) int {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "greeter: %v\n", err)
		return 1
	}
	srv := grpc.NewServer()
	pb.RegisterGreeterServer(srv, greeter{addr: addr})
	checks := health.NewServer() // "" (the whole server): SERVING
	healthpb.RegisterHealthServer(srv, checks)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		checks.Shutdown()
		srv.GracefulStop()
	}()
	time.AfterFunc(10*time.Minute, func() { os.Exit(3) })
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintf(os.Stderr, "greeter: %v\n", err)
		return 1
	}
	return 0
}

// wrapped is one `registry run` process and what it printed on stderr.
type wrapped struct {
	addr   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

func (w *wrapped) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.String()
}

// startWrapped runs `registry run --drain 1` around this binary as a
// Greeter on addr; the test's cleanup stops it (SIGTERM, then SIGKILL).
func startWrapped(t *testing.T, registry, addr string) *wrapped {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w := &wrapped{addr: addr, done: make(chan struct{})}
	w.cmd = exec.Command(registry, "run", "--name", rollingName, "--addr", addr,
		"--check", "grpc://"+addr, "--check-interval", "0.1", "--drain", "1", "--", self)
	w.cmd.Env = append(os.Environ(), greeterAddrEnv+"="+addr)
	w.cmd.Stderr = &lockedWriter{mu: &w.mu, w: &w.stderr}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("starting registry run: %v", err)
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		select {
		case <-w.done:
			return
		default:
		}
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	})
	return w
}

// stop sends SIGTERM and waits for `registry` to exit: its exit code.
func (w *wrapped) stop(t *testing.T, limit time.Duration) int {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to registry run %s: %v", w.addr, err)
	}
	select {
	case <-w.done:
	case <-time.After(limit):
		t.Fatalf("registry run %s did not exit within %v of SIGTERM:\n%s", w.addr, limit, w.output())
	}
	return w.cmd.ProcessState.ExitCode()
}

// waitKey polls etcd until the key of addr is there (or gone); when it was seen so.
func waitKey(t *testing.T, cli *clientv3.Client, addr string, present bool, limit time.Duration) time.Time {
	t.Helper()
	key := "/" + rollingName + "/" + addr
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := cli.Get(ctx, key)
		cancel()
		if err == nil && (len(resp.Kvs) > 0) == present {
			return time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s present=%v not seen within %v", key, present, limit)
	return time.Time{}
}

func TestRollingRestartUnderRegistryRun(t *testing.T) {
	registry := os.Getenv("INTEROP_REGISTRY")
	if registry == "" || os.Getenv("REGISTRY_ENDPOINTS") == "" {
		t.Skip("INTEROP_REGISTRY or REGISTRY_ENDPOINTS is not set: run scripts/test-interop.sh")
	}
	cli := etcdClient(t)
	var providers []*wrapped
	for range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		providers = append(providers, startWrapped(t, registry, addr))
	}
	var addrs []string
	for _, p := range providers {
		waitKey(t, cli, p.addr, true, 60*time.Second)
		addrs = append(addrs, p.addr)
	}
	slices.Sort(addrs)

	client, obs := dialGreeter(t, cli, "etcd:////"+rollingName)
	if _, ok := obs.waitFor(0, 10*time.Second, equal(addrs)); !ok {
		t.Fatalf("the resolver never listed %v; last: %v", addrs, obs.latest())
	}
	l := startLoad(t, client, 2*time.Millisecond, 120*time.Second)
	began := time.Now()
	for _, p := range providers {
		if _, ok := l.waitAnswer(began, p.addr, 0, 10*time.Second); !ok {
			t.Fatalf("%s never answered", p.addr)
		}
	}

	for i, old := range providers {
		mark := obs.mark()
		asked := time.Now()
		if code := old.stop(t, 15*time.Second); code != 0 {
			t.Fatalf("registry run %s exited %d, want the greeter's 0:\n%s", old.addr, code, old.output())
		}
		stopped := time.Now()
		dropped, ok := obs.waitFor(mark, time.Second, without(old.addr))
		if !ok || dropped.at.After(stopped) {
			t.Fatalf("the resolver did not drop %s before its server stopped: %v", old.addr, obs.latest())
		}
		restarted := startWrapped(t, registry, old.addr)
		back := waitKey(t, cli, old.addr, true, 60*time.Second)
		if _, ok := obs.waitFor(mark, 10*time.Second, equal(addrs)); !ok {
			t.Fatalf("the resolver never listed %s again: %v", old.addr, obs.latest())
		}
		first, ok := l.waitAnswer(back, old.addr, 0, 10*time.Second)
		if !ok {
			t.Fatalf("the restarted %s never answered", old.addr)
		}
		t.Logf("FIGURE rolling restart %d/3 (%s): the resolver dropped it %s after SIGTERM, registry exited %s after it "+
			"(drain 1 s), registered again %s after, first answer from pid %d %s after that",
			i+1, old.addr, ms(dropped.at.Sub(asked)), ms(stopped.Sub(asked)), ms(back.Sub(stopped)),
			first.pid, ms(first.end.Sub(back)))
		providers[i] = restarted
	}
	time.Sleep(300 * time.Millisecond)
	l.halt()
	calls := l.between(began, time.Now())
	per, failed := tally(calls)
	t.Logf("FIGURE rolling restart of 3 providers under registry run --drain 1: %d calls made, %d failed; per address %v",
		len(calls), failed, per)
	for _, c := range calls {
		if c.err != nil {
			t.Errorf("a call failed at %s: %v", c.start.Format(time.RFC3339Nano), c.err)
		}
	}
	for _, p := range providers {
		if code := p.stop(t, 15*time.Second); code != 0 {
			t.Errorf("registry run %s exited %d:\n%s", p.addr, code, p.output())
		}
	}
}
