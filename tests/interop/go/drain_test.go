package interop

// Drain with withdraw/restore: Python providers take themselves out of etcd
// (the registration kept) before they stop, so a Go client calling them in
// a loop through etcd's resolver never fails a call, through a withdraw and
// restore in place and through a rolling restart of all three.

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// drainPause is how long a provider keeps serving after it withdrew, so the
// resolver's update reaches the client before the server stops.
const drainPause = time.Second

func TestPythonProvidersDrainWithWithdrawAndRestore(t *testing.T) {
	requireInterop(t)
	cli := etcdClient(t)
	ps := startProviders(t, "rolling", 0, 0, 0)
	client, obs := dialGreeter(t, cli, "etcd:////rolling")
	if _, ok := obs.waitFor(0, 10*time.Second, equal(addrsOf(ps...))); !ok {
		t.Fatalf("the resolver never listed the three providers %v; last: %v", addrsOf(ps...), obs.latest())
	}
	started := time.Now()
	l := startLoad(t, client, 2*time.Millisecond, 150*time.Second)
	if _, ok := l.waitAnswer(started, ps[0].addr, ps[0].pid, 10*time.Second); !ok {
		t.Fatalf("%s never answered", ps[0].name)
	}

	ok := t.Run("withdrawn, the provider gets no calls; restored, it gets them again", func(t *testing.T) {
		p := ps[0]
		mark := obs.mark()
		p.send("withdraw")
		p.expect(0, 10*time.Second, "withdrawn ")
		gone, ok := obs.waitFor(mark, 5*time.Second, without(p.addr))
		if !ok {
			t.Fatalf("the resolver kept %s after it withdrew: %v", p.addr, obs.latest())
		}
		time.Sleep(500 * time.Millisecond)
		// Calls that start once the client's picker has the new list (give it 100 ms) skip it.
		for _, c := range l.between(gone.at.Add(100*time.Millisecond), time.Now()) {
			if c.from == p.addr {
				t.Fatalf("a call started %s after the resolver dropped %s still went to it", ms(c.start.Sub(gone.at)), p.addr)
			}
		}
		restoredAt := p.send("restore")
		p.expect(0, 10*time.Second, "restored ")
		back, ok := l.waitAnswer(restoredAt, p.addr, p.pid, 5*time.Second)
		if !ok {
			t.Fatalf("%s got no call after it was restored", p.addr)
		}
		t.Logf("FIGURE restored provider answered again %s after restore was asked", ms(back.end.Sub(restoredAt)))
	})
	if !ok {
		return
	}

	parent := t // the successors outlive the subtest, as the load does
	t.Run("a rolling restart of three providers, each withdrawn first, fails no call", func(t *testing.T) {
		for i, p := range ps {
			mark := obs.mark()
			p.send("withdraw")
			p.expect(0, 10*time.Second, "withdrawn ")
			if _, ok := obs.waitFor(mark, 5*time.Second, without(p.addr)); !ok {
				t.Fatalf("the resolver kept %s after it withdrew: %v", p.addr, obs.latest())
			}
			time.Sleep(drainPause)
			p.quit(10 * time.Second)
			port, err := strconv.Atoi(p.addr[strings.LastIndex(p.addr, ":")+1:])
			if err != nil {
				t.Fatal(err)
			}
			since := time.Now()
			next := startProviders(parent, "rolling", port)[0]
			if _, ok := l.waitAnswer(since, next.addr, next.pid, 10*time.Second); !ok {
				t.Fatalf("provider %d's successor (pid %d) never answered", i+1, next.pid)
			}
			ps[i] = next
		}
	})
	l.halt()
	calls := l.between(started, time.Now())
	per, errs := tally(calls)
	t.Logf("FIGURE withdraw/restore and a rolling restart of 3 Python providers: %d calls, %d failed, per address %v",
		len(calls), errs, per)
	if errs > 0 {
		for _, c := range calls {
			if c.err != nil {
				t.Errorf("call at %s failed: %v", c.start.Format("15:04:05.000"), c.err)
				break
			}
		}
		t.Fatalf("%d of %d calls failed", errs, len(calls))
	}
}
