package interop

// go-zero v1.10.3: its zrpc client, dialing by etcd key the way a go-zero
// service's RpcClientConf does, calls providers registered through
// libregistry in the go-zero layout.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zeromicro/go-zero/core/discov"
	"github.com/zeromicro/go-zero/zrpc"
	clientv3 "go.etcd.io/etcd/client/v3"
	pb "google.golang.org/grpc/examples/helloworld/helloworld"
)

// goZeroKey is the EtcdConf.Key the providers register under and the client dials.
const goZeroKey = "greeter.rpc"

// dialGoZero is a go-zero service's client of `key`: zrpc with etcd
// discovery and gRPC's round_robin balancer (go-zero's default, p2c_ewma,
// favours the fastest provider instead of spreading calls evenly).
func dialGoZero(t *testing.T, key string) pb.GreeterClient {
	t.Helper()
	client, err := zrpc.NewClient(zrpc.RpcClientConf{
		Etcd:         discov.EtcdConf{Hosts: strings.Split(os.Getenv("REGISTRY_ENDPOINTS"), ","), Key: key},
		NonBlock:     true,
		Timeout:      2000,
		BalancerName: "round_robin",
	})
	if err != nil {
		t.Fatalf("zrpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = client.Conn().Close() })
	return pb.NewGreeterClient(client.Conn())
}

// observeGoZero records what go-zero's subscriber of `key` lists: the
// address list zrpc's resolver hands to gRPC (both share one etcd watch).
func observeGoZero(t *testing.T, key string) *observer {
	t.Helper()
	sub, err := discov.NewSubscriber(strings.Split(os.Getenv("REGISTRY_ENDPOINTS"), ","), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return observe(sub.Values, sub.AddListener)
}

func TestGoZeroClientCallsPythonAndCProvidersRoundRobin(t *testing.T) {
	requireInterop(t)
	t.Setenv("REGISTRY_LAYOUT", "go-zero")
	cli := etcdClient(t)
	a := startPython(t, "python provider a", goZeroKey, "{}")
	b := startPython(t, "python provider b", goZeroKey, "{}")
	c := startPython(t, "python provider c", goZeroKey, "{}")
	g := startC(t, "c provider", goZeroKey)
	all := []*provider{a, b, c, g}
	for _, p := range all {
		resp, err := cli.Get(context.Background(), p.key)
		if err != nil || p.key != goZeroKey+"/"+p.addr || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != p.addr {
			t.Fatalf("%s: etcd holds %v under %s (%v); want the value %s under %s/%s", p.name, resp, p.key, err, p.addr, goZeroKey, p.addr)
		}
	}
	obs := observeGoZero(t, goZeroKey)
	if _, ok := obs.waitFor(0, 10*time.Second, listing(addrs(all...))); !ok {
		t.Fatalf("go-zero's subscriber never listed %v; last: %v", addrs(all...), obs.latest())
	}
	client := dialGoZero(t, goZeroKey)
	l := startLoad(t, client, 2*time.Millisecond, 150*time.Second)
	ttl := 3 * time.Second // REGISTRY_TTL of tests/interop/run.py

	ok := t.Run("three Python providers and one C provider share the calls evenly", func(t *testing.T) {
		allAnswer(t, l, all, 10*time.Second)
		even := map[string]float64{a.addr: 0.25, b.addr: 0.25, c.addr: 0.25, g.addr: 0.25}
		expectShares(t, "go-zero round robin over 3 Python + 1 C", sample(l, 800*time.Millisecond), even, 0.05)
	})
	if !ok {
		return
	}

	ok = t.Run("a deregistered provider gets no call 1 s after", func(t *testing.T) {
		mark, lines := obs.mark(), a.mark()
		sent := a.send("deregister")
		_, done := a.expect(lines, 10*time.Second, "deregistered ")
		dropped, ok := obs.waitFor(mark, 5*time.Second, listing(addrs(b, c, g)))
		if !ok {
			t.Fatalf("go-zero kept %s after it deregistered: %v", a.addr, obs.latest())
		}
		time.Sleep(1500 * time.Millisecond) // a still serves: only go-zero keeps calls away
		last := lastAnswerBy(l.between(sent.Add(-time.Second), time.Now()), a.addr)
		lines = a.mark()
		a.send("stats")
		_, stats := a.expect(lines, 10*time.Second, "stats ")
		t.Logf("FIGURE go-zero, deregister: returned %s after asked; go-zero's list dropped it %s later; "+
			"the last call to it started %s after deregister returned; provider-side: %s",
			ms(done.at.Sub(sent)), ms(dropped.at.Sub(done.at)), ms(last.Sub(done.at)), stats.text)
		if last.Sub(done.at) > time.Second {
			t.Errorf("a call started %v after deregister returned reached %s (limit 1 s)", last.Sub(done.at), a.addr)
		}
		third := 1.0 / 3
		expectShares(t, "after the deregister", sample(l, 600*time.Millisecond),
			map[string]float64{b.addr: third, c.addr: third, g.addr: third}, 0.06)
		a.quit(10 * time.Second)
	})
	if !ok {
		return
	}

	ok = t.Run("a SIGKILLed provider leaves go-zero's list within TTL + 1 s", func(t *testing.T) {
		mark := obs.mark()
		killed := b.sigkill()
		dropped, ok := obs.waitFor(mark, ttl+6*time.Second, listing(addrs(c, g)))
		if !ok {
			t.Fatalf("go-zero kept %s after SIGKILL: %v", b.addr, obs.latest())
		}
		took := dropped.at.Sub(killed)
		per, failed := tally(l.between(killed, dropped.at))
		t.Logf("FIGURE go-zero, SIGKILL: dropped from go-zero's list %s after the kill (TTL %v); meanwhile calls %v, %d failed",
			ms(took), ttl, per, failed)
		if took > ttl+time.Second {
			t.Errorf("go-zero listed %s %v after SIGKILL: later than TTL + 1 s", b.addr, took)
		}
		if last := lastAnswerBy(l.between(killed, time.Now()), b.addr); !last.IsZero() {
			t.Errorf("a call reached the killed %s", b.addr)
		}
	})
	if !ok {
		return
	}

	t.Run("etcd wiped and restarted: calls go to every live provider again", func(t *testing.T) {
		asked, back := wipeEtcd(t, cli)
		var healed time.Time
		for _, p := range []*provider{c, g} {
			if at := waitHeld(t, cli, p.key, p.addr, 10*time.Second); at.After(healed) {
				healed = at
			}
		}
		// One more registers on the new etcd: go-zero must follow it (its
		// watch must not be stuck on the old etcd's revisions).
		mark := obs.mark()
		d := startPython(t, "python provider d", goZeroKey, "{}")
		live := []*provider{c, g, d}
		listed, ok := obs.waitFor(mark, 30*time.Second, listing(addrs(live...)))
		if !ok {
			t.Fatalf("go-zero never listed %v after the wipe: %v", addrs(live...), obs.latest())
		}
		answered := allAnswer(t, l, live, 20*time.Second)
		per, failed := tally(l.between(asked, answered))
		t.Logf("FIGURE go-zero, etcd wiped: etcd answered %s after the wipe was asked; the providers' keys were back %s, "+
			"go-zero listed them and a new one %s and all three answered %s after etcd answered; calls meanwhile %v, %d failed",
			ms(back.Sub(asked)), ms(healed.Sub(back)), ms(listed.at.Sub(back)), ms(answered.Sub(back)), per, failed)
		third := 1.0 / 3
		expectShares(t, "after the wipe", sample(l, 600*time.Millisecond),
			map[string]float64{c.addr: third, g.addr: third, d.addr: third}, 0.06)
		l.halt()
		for _, p := range live {
			p.quit(10 * time.Second)
		}
	})
}

// TestFrameworkProvidersFoundByCAndPython: what go-zero's own publisher
// and kratos's etcd registry write is found, and followed, by libregistry's
// C and Python consumers in the matching layout.
func TestFrameworkProvidersFoundByCAndPython(t *testing.T) {
	requireInterop(t)
	for _, lang := range []string{"C", "Python"} {
		t.Run("go-zero's discov.Publisher, found by "+lang, func(t *testing.T) {
			t.Setenv("REGISTRY_LAYOUT", "go-zero")
			hosts := strings.Split(os.Getenv("REGISTRY_ENDPOINTS"), ",")
			name := "gozero-found"
			first := discov.NewPublisher(hosts, name, "127.0.0.1:5301")
			if err := first.KeepAlive(); err != nil {
				t.Fatal(err)
			}
			defer first.Stop()
			cons := startConsumer(t, lang, name)
			key := onlyKey(t, name+"/") // go-zero's publisher: its lease ID, in decimal
			cons.changeSeen(0, "ADDED", key, "127.0.0.1:5301")
			second := discov.NewPublisher(hosts, name, "127.0.0.1:5302", discov.WithId(7))
			if err := second.KeepAlive(); err != nil {
				t.Fatal(err)
			}
			seen := cons.changeSeen(0, "ADDED", name+"/7", "127.0.0.1:5302")
			t.Logf("FIGURE the %s consumer saw go-zero's second publisher at %s", lang, seen.at.Format(time.StampMilli))
			cons.expectListing(map[string]string{key: "127.0.0.1:5301", name + "/7": "127.0.0.1:5302"})
			mark := cons.mark()
			second.Stop() // revokes its lease
			cons.changeSeen(mark, "REMOVED", name+"/7", "127.0.0.1:5302")
			cons.expectListing(map[string]string{key: "127.0.0.1:5301"})
			cons.quit(10 * time.Second)
		})
		t.Run("kratos's etcd registry, found by "+lang, func(t *testing.T) {
			t.Setenv("REGISTRY_LAYOUT", "kratos")
			cli := etcdClient(t)
			name := "kratos-found"
			lease := registerKratos(t, cli, name, "9d4e", map[string]string{"weight": "50", "zone": "zone2"},
				"http://127.0.0.1:8401", "grpc://127.0.0.1:9401")
			cons := startConsumer(t, lang, name)
			key := "/microservices/" + name + "/9d4e"
			cons.changeSeen(0, "ADDED", key, "127.0.0.1:9401")
			cons.expectListing(map[string]string{key: "127.0.0.1:9401 id=9d4e,scheme=grpc,version=v1.0.0,weight=50,zone=zone2"})
			mark := cons.mark()
			if _, err := cli.Revoke(context.Background(), lease); err != nil {
				t.Fatal(err)
			}
			cons.changeSeen(mark, "REMOVED", key, "127.0.0.1:9401")
			cons.quit(10 * time.Second)
		})
	}
}

// waitHeld waits until etcd holds `value` at `key`; returns when it saw it.
func waitHeld(t *testing.T, cli *clientv3.Client, key, value string, limit time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := cli.Get(context.Background(), key)
		if err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == value {
			return time.Now()
		}
	}
	t.Fatalf("etcd does not hold %s at %s after %v", value, key, limit)
	return time.Time{}
}

// onlyKey is the one key etcd holds under `prefix`.
func onlyKey(t *testing.T, prefix string) string {
	t.Helper()
	cli := etcdClient(t)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix())
		if err == nil && len(resp.Kvs) == 1 {
			return string(resp.Kvs[0].Key)
		}
	}
	t.Fatalf("etcd does not hold exactly one key under %s", prefix)
	return ""
}

// consumer is libregistry's C or Python consumer (tests/interop/{c,python})
// of one name: "ADDED/UPDATED/REMOVED KEY ADDR" lines, listings on request.
type consumer struct{ *proc }

func startConsumer(t *testing.T, lang, name string) consumer {
	t.Helper()
	var c consumer
	if lang == "C" {
		c = consumer{cProc(t, "C consumer", "consumer", name)}
	} else {
		c = consumer{pythonProc(t, "Python consumer", "consumer.py", name)}
	}
	c.expect(0, 60*time.Second, "watching "+name)
	return c
}

func (c consumer) changeSeen(from int, kind, key, addr string) line {
	c.t.Helper()
	want := fmt.Sprintf("%s %s %s", kind, key, addr)
	_, l := c.waitLine(from, 10*time.Second, fmt.Sprintf("%q", want), func(s string) bool { return s == want })
	return l
}

// expectListing checks what `discover` returns: KEY -> "ADDR k=v,k=v"
// (metadata the library adds to every instance, like startTime, is none here).
func (c consumer) expectListing(want map[string]string) {
	c.t.Helper()
	from := c.mark()
	c.send("discover")
	start, _ := c.expect(from, 10*time.Second, "LIST ")
	end, _ := c.expect(start, 10*time.Second, "END")
	got := map[string]string{}
	for _, s := range c.linesFrom(start + 1)[:end-start-1] {
		fields := strings.SplitN(strings.TrimPrefix(s, "ITEM "), " ", 2)
		got[fields[0]] = fields[1]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		c.t.Errorf("%s discover:\n got  %v\n want %v (keys %v)", c.name, got, want, sortedKeys(want))
	}
}
