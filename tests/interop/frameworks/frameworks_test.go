// Package interop, for the Go frameworks: go-zero's real zrpc client and
// kratos's real gRPC client call Python and C providers registered through
// libregistry in go-zero's and kratos's layouts, and libregistry's C and
// Python consumers find what go-zero's own publisher and kratos's registry
// write. Run it with scripts/test-interop.sh (a module of its own: go-zero
// and kratos pin their own etcd client and gRPC versions).
//
// procs_test.go and observe_test.go are the seed interop's (links to
// tests/interop/go): child processes driven over stdin/stdout, the call
// load, and the observer of the address lists a resolver hands to gRPC.
package interop

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	klog "github.com/go-kratos/kratos/v2/log"
	"github.com/zeromicro/go-zero/core/logx"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/resolver"
)

// provider is a Python or C Greeter process registered through libregistry.
type provider struct {
	*proc
	addr string
	key  string
	pid  int
}

// startPython starts a Python provider of `name` registering `metadata`
// (JSON) in the layout of REGISTRY_LAYOUT, and waits until it is registered.
func startPython(t *testing.T, label, name, metadata string) *provider {
	t.Helper()
	p := pythonProc(t, label, "greeter_provider.py", "--name", name, "--metadata", metadata)
	return registered(t, p)
}

// startC starts the C Greeter (tests/interop/c/greeter.c) of `name`.
func startC(t *testing.T, label, name string) *provider {
	t.Helper()
	return registered(t, cProc(t, label, "greeter", name))
}

func registered(t *testing.T, p *proc) *provider {
	t.Helper()
	_, l := p.expect(0, 60*time.Second, "listening ")
	addr := strings.TrimPrefix(l.text, "listening ")
	_, l = p.expect(0, 60*time.Second, "registered ")
	return &provider{proc: p, addr: addr, key: strings.Fields(l.text)[1], pid: p.cmd.Process.Pid}
}

func addrs(ps ...*provider) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.addr)
	}
	slices.Sort(out)
	return out
}

func listing(want []string) func([]string) bool {
	return func(got []string) bool { return slices.Equal(got, want) }
}

// observe records every address list `values` gives when `subscribe`
// says it changed, in the observer the seed interop uses for resolvers.
func observe(values func() []string, subscribe func(func())) *observer {
	obs := newObserver()
	update := func() {
		var state resolver.State
		for _, v := range values() {
			state.Addresses = append(state.Addresses, resolver.Address{Addr: v})
		}
		obs.record(state)
	}
	subscribe(update)
	update()
	return obs
}

// expectShares fails unless each address of `want` answered its share of
// the calls (within `slack`), no other answered, and no call failed.
func expectShares(t *testing.T, what string, calls []call, want map[string]float64, slack float64) {
	t.Helper()
	per, failed := tally(calls)
	t.Logf("FIGURE %s: %d calls: %v, %d failed", what, len(calls), per, failed)
	if failed > 0 || len(calls) < 20*len(want) {
		t.Errorf("%s: %d calls, %d failed", what, len(calls), failed)
	}
	for addr, n := range per {
		share, ok := want[addr]
		got := float64(n) / float64(len(calls))
		if !ok || math.Abs(got-share) > slack {
			t.Errorf("%s: %s answered %.1f%% of the calls, want %.1f%% ± %.0f", what, addr, got*100, share*100, slack*100)
		}
	}
	for addr := range want {
		if per[addr] == 0 && want[addr] > 0 {
			t.Errorf("%s: %s answered no call", what, addr)
		}
	}
}

// allAnswer waits until every provider answered a call started from now
// on; returns when the last of them did.
func allAnswer(t *testing.T, l *load, ps []*provider, limit time.Duration) time.Time {
	t.Helper()
	since, last := time.Now(), time.Time{}
	for _, p := range ps {
		first, ok := l.waitAnswer(since, p.addr, p.pid, limit)
		if !ok {
			t.Fatalf("%s (%s) never answered", p.name, p.addr)
		}
		if first.end.After(last) {
			last = first.end
		}
	}
	return last
}

// sample is the calls made over the next `d`.
func sample(l *load, d time.Duration) []call {
	from := time.Now()
	time.Sleep(d)
	return l.between(from, time.Now())
}

// lastAnswerBy is when the last call `addr` answered started (zero: none).
func lastAnswerBy(calls []call, addr string) time.Time {
	var last time.Time
	for _, c := range calls {
		if c.err == nil && c.from == addr && c.start.After(last) {
			last = c.start
		}
	}
	return last
}

// wipeEtcd asks tests/interop/run.py to kill etcd, wipe its data and start
// it again on the same ports (SIGUSR1 to it, our parent), and waits until
// it answers without the data it had: returns when it asked and when etcd answered.
func wipeEtcd(t *testing.T, cli *clientv3.Client) (time.Time, time.Time) {
	t.Helper()
	if os.Getenv("INTEROP_WIPE_SIGNAL") != "USR1" {
		t.Skip("INTEROP_WIPE_SIGNAL is not USR1: run by scripts/test-interop.sh, whose run.py wipes etcd on SIGUSR1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "wipe-marker", "before"); err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	if err := syscall.Kill(os.Getppid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for {
		short, done := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := cli.Get(short, "wipe-marker")
		done()
		if err == nil && len(resp.Kvs) == 0 {
			return asked, time.Now()
		}
		if ctx.Err() != nil {
			t.Fatalf("etcd did not come back wiped within 60 s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sortedKeys lists a map's keys in order (for stable messages).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestMain(m *testing.M) {
	logx.Disable()                                // go-zero's logs and stats
	klog.SetLogger(klog.NewStdLogger(io.Discard)) // kratos's resolver logs
	if os.Getenv("REGISTRY_ENDPOINTS") != "" {
		fmt.Printf("interop frameworks: etcd %s\n", os.Getenv("REGISTRY_ENDPOINTS"))
	}
	os.Exit(m.Run())
}
