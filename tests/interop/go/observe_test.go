package interop

// What etcd's gRPC resolver tells gRPC, seen from outside: a resolver
// builder that wraps etcd's own (go.etcd.io/etcd/client/v3/naming/resolver)
// and records every address list it hands to the ClientConn, unchanged.

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdresolver "go.etcd.io/etcd/client/v3/naming/resolver"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pb "google.golang.org/grpc/examples/helloworld/helloworld"
	"google.golang.org/grpc/resolver"
)

// roundRobin is the service config a Go consumer sets to spread calls over
// every address the resolver gives (gRPC's default, pick_first, uses one).
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// requireInterop skips when not run by scripts/test-interop.sh, which
// starts etcd and builds the providers.
func requireInterop(t *testing.T) {
	t.Helper()
	for _, name := range []string{"REGISTRY_ENDPOINTS", "INTEROP_PYTHON", "INTEROP_DIR", "INTEROP_BIN"} {
		if os.Getenv(name) == "" {
			t.Skipf("%s is not set: run scripts/test-interop.sh (it starts etcd and builds the providers)", name)
		}
	}
}

// etcdClient is a Go etcd client on the test's etcd (REGISTRY_ENDPOINTS).
func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(os.Getenv("REGISTRY_ENDPOINTS"), ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// resolved is one address list the resolver handed to gRPC, and when.
type resolved struct {
	at    time.Time
	addrs []string // sorted
}

type observer struct {
	mu      sync.Mutex
	states  []resolved
	changed chan struct{}
	prefix  string // the etcd prefix the resolver watches, derived as it derives it
}

func newObserver() *observer { return &observer{changed: make(chan struct{})} }

func (o *observer) record(s resolver.State) {
	var addrs []string
	for _, e := range s.Endpoints {
		for _, a := range e.Addresses {
			addrs = append(addrs, a.Addr)
		}
	}
	for _, a := range s.Addresses {
		addrs = append(addrs, a.Addr)
	}
	slices.Sort(addrs)
	o.mu.Lock()
	o.states = append(o.states, resolved{at: time.Now(), addrs: addrs})
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// mark is the number of lists seen so far: a starting point for waitFor.
func (o *observer) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.states)
}

func (o *observer) latest() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.states) == 0 {
		return nil
	}
	return o.states[len(o.states)-1].addrs
}

// waitFor returns the first list from index `from` on that `ok` accepts
// (with the time the resolver gave it), or false after `limit`.
func (o *observer) waitFor(from int, limit time.Duration, ok func([]string) bool) (resolved, bool) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		for i := from; i < len(o.states); i++ {
			if ok(o.states[i].addrs) {
				s := o.states[i]
				o.mu.Unlock()
				return s, true
			}
		}
		from = len(o.states)
		changed := o.changed
		o.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return resolved{}, false
		}
	}
}

type observingBuilder struct {
	inner resolver.Builder
	obs   *observer
}

func (b observingBuilder) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	// The same derivation as etcd's resolver: the URL's path (else opaque
	// part) less one leading "/", then "/" appended.
	endpoint := target.URL.Path
	if endpoint == "" {
		endpoint = target.URL.Opaque
	}
	b.obs.mu.Lock()
	b.obs.prefix = strings.TrimPrefix(endpoint, "/") + "/"
	b.obs.mu.Unlock()
	return b.inner.Build(target, observingConn{ClientConn: cc, obs: b.obs}, opts)
}

func (b observingBuilder) Scheme() string { return b.inner.Scheme() }

type observingConn struct {
	resolver.ClientConn
	obs *observer
}

func (c observingConn) UpdateState(s resolver.State) error {
	c.obs.record(s)
	return c.ClientConn.UpdateState(s)
}

// dialGreeter dials `target` through etcd's resolver (scheme "etcd") with
// round-robin balancing, the way a Go consumer does, and records what the
// resolver reports.
func dialGreeter(t *testing.T, cli *clientv3.Client, target string) (pb.GreeterClient, *observer) {
	t.Helper()
	etcdBuilder, err := etcdresolver.NewBuilder(cli)
	if err != nil {
		t.Fatal(err)
	}
	obs := newObserver()
	conn, err := grpc.NewClient(target,
		grpc.WithResolvers(observingBuilder{inner: etcdBuilder, obs: obs}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(roundRobin),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient(%q): %v", target, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	conn.Connect()
	return pb.NewGreeterClient(conn), obs
}

// ---- calls -----------------------------------------------------------------

// call is one SayHello: when it started and ended, who answered (address
// and PID, from the reply) or the error.
type call struct {
	start, end time.Time
	from       string
	pid        int
	err        error
}

var replyRe = regexp.MustCompile(`^Hello (\S+) from (\S+) pid (\d+)$`)

// load calls SayHello one call after another, a pause of `every` between
// them, until stopped or `limit` passed (bounded in time and count).
type load struct {
	mu    sync.Mutex
	calls []call
	stop  chan struct{}
	done  chan struct{}
}

const maxCalls = 200_000

func startLoad(t *testing.T, client pb.GreeterClient, every, limit time.Duration) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		end := time.Now().Add(limit)
		for n := 0; n < maxCalls && time.Now().Before(end); n++ {
			select {
			case <-l.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c := call{start: time.Now()}
			reply, err := client.SayHello(ctx, &pb.HelloRequest{Name: fmt.Sprintf("go-%d", n)})
			cancel()
			c.end = time.Now()
			if err != nil {
				c.err = err
			} else if m := replyRe.FindStringSubmatch(reply.GetMessage()); m == nil {
				c.err = fmt.Errorf("unexpected reply %q", reply.GetMessage())
			} else {
				c.from = m[2]
				c.pid, _ = strconv.Atoi(m[3])
			}
			l.mu.Lock()
			l.calls = append(l.calls, c)
			l.mu.Unlock()
			time.Sleep(every)
		}
	}()
	t.Cleanup(l.halt)
	return l
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// between returns the calls that started in [from, to).
func (l *load) between(from, to time.Time) []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []call
	for _, c := range l.calls {
		if !c.start.Before(from) && c.start.Before(to) {
			out = append(out, c)
		}
	}
	return out
}

// atLeast returns the calls started since `from` once `pause` has passed
// and at least `n` of them were made (at most 10 s more: a loaded machine
// makes fewer calls per second, and a share of too few calls means little).
func (l *load) atLeast(from time.Time, pause time.Duration, n int) []call {
	time.Sleep(pause)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if calls := l.between(from, time.Now()); len(calls) >= n {
			return calls
		}
	}
	return l.between(from, time.Now())
}

// waitAnswer waits until a call started at or after `since` is answered by
// `addr` (and, if pid > 0, by that process); returns that call.
func (l *load) waitAnswer(since time.Time, addr string, pid int, limit time.Duration) (call, bool) {
	deadline := time.Now().Add(limit)
	for seen := 0; time.Now().Before(deadline); {
		l.mu.Lock()
		for ; seen < len(l.calls); seen++ {
			c := l.calls[seen]
			if !c.start.Before(since) && c.err == nil && c.from == addr && (pid <= 0 || c.pid == pid) {
				l.mu.Unlock()
				return c, true
			}
		}
		l.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	return call{}, false
}

// tally counts answers per address, and errors.
func tally(calls []call) (map[string]int, int) {
	per := map[string]int{}
	errs := 0
	for _, c := range calls {
		if c.err != nil {
			errs++
		} else {
			per[c.from]++
		}
	}
	return per, errs
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
