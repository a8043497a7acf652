package interop

// kratos v2.8.3: what libregistry writes in the kratos layout decodes into
// kratos's registry.ServiceInstance, and kratos's gRPC client (its
// discovery resolver and weighted round-robin selector) calls Python
// providers registered that way, by their weights. kratos's etcd registry
// (contrib/registry/etcd) is a module of its own that the Go proxy here
// does not serve: etcdDiscovery below reads etcd the way it does.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2/registry"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	clientv3 "go.etcd.io/etcd/client/v3"
	pb "google.golang.org/grpc/examples/helloworld/helloworld"
)

// kratosNamespace is kratos's etcd registry's default Namespace.
const kratosNamespace = "/microservices"

// etcdDiscovery is a registry.Discovery over etcd that reads as kratos's
// etcd registry does: every value under "{namespace}/{name}" (no trailing
// "/") decoded as a ServiceInstance, those of another name skipped, any
// value that does not decode failing the whole read; a watch on the same
// prefix triggers a fresh read.
type etcdDiscovery struct{ cli *clientv3.Client }

func (d etcdDiscovery) GetService(ctx context.Context, name string) ([]*registry.ServiceInstance, error) {
	resp, err := d.cli.Get(ctx, kratosNamespace+"/"+name, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var found []*registry.ServiceInstance
	for _, kv := range resp.Kvs {
		var si registry.ServiceInstance
		if err := json.Unmarshal(kv.Value, &si); err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		if si.Name == name {
			found = append(found, &si)
		}
	}
	return found, nil
}

func (d etcdDiscovery) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	events := d.cli.Watch(ctx, kratosNamespace+"/"+name, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	return &kratosWatcher{d: d, name: name, ctx: ctx, cancel: cancel, events: events, first: true}, nil
}

type kratosWatcher struct {
	d      etcdDiscovery
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	events clientv3.WatchChan
	first  bool
}

func (w *kratosWatcher) Next() ([]*registry.ServiceInstance, error) {
	if !w.first {
		select {
		case <-w.ctx.Done():
			return nil, w.ctx.Err()
		case <-w.events:
		}
	}
	w.first = false
	return w.d.GetService(w.ctx, w.name)
}

func (w *kratosWatcher) Stop() error {
	w.cancel()
	return nil
}

// registerKratos writes an instance the way kratos's etcd registry does
// (json.Marshal of the ServiceInstance, under a lease of its own).
func registerKratos(t *testing.T, cli *clientv3.Client, name, id string, metadata map[string]string,
	endpoints ...string) clientv3.LeaseID {
	t.Helper()
	ctx := context.Background()
	value, err := json.Marshal(&registry.ServiceInstance{ID: id, Name: name, Version: "v1.0.0", Metadata: metadata, Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, fmt.Sprintf("%s/%s/%s", kratosNamespace, name, id), string(value), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.Revoke(context.Background(), lease.ID) })
	return lease.ID
}

func TestKratosClientCallsPythonProvidersByWeight(t *testing.T) {
	requireInterop(t)
	t.Setenv("REGISTRY_LAYOUT", "kratos")
	cli := etcdClient(t)
	name := "greeter"
	weights := []int{100, 200, 300}
	var ps []*provider
	for i, w := range weights {
		metadata := fmt.Sprintf(`{"weight": %d, "zone": "zone1", "provider": "python", "appVersion": "v2.%d.0"}`, w, i)
		if i == 0 {
			metadata = fmt.Sprintf(`{"weight": %d, "id": "greeter-a", "version": "v3"}`, w)
		}
		ps = append(ps, startPython(t, fmt.Sprintf("python provider %d", w), name, metadata))
	}

	ok := t.Run("each value decodes into kratos's ServiceInstance, byte for byte as kratos writes it", func(t *testing.T) {
		for i, p := range ps {
			resp, err := cli.Get(context.Background(), p.key)
			if err != nil || len(resp.Kvs) != 1 {
				t.Fatalf("%s: etcd holds %v under %s (%v)", p.name, resp, p.key, err)
			}
			raw := resp.Kvs[0].Value
			var si registry.ServiceInstance
			if err := json.Unmarshal(raw, &si); err != nil {
				t.Fatalf("%s: kratos cannot decode %s: %v", p.name, raw, err)
			}
			id, version := p.addr, fmt.Sprintf("v2.%d.0", i)
			if i == 0 {
				id, version = "greeter-a", "v3"
			}
			if p.key != kratosNamespace+"/"+name+"/"+id || si.ID != id || si.Name != name || si.Version != version ||
				len(si.Endpoints) != 1 || si.Endpoints[0] != "grpc://"+p.addr || si.Metadata["weight"] != fmt.Sprint(weights[i]) {
				t.Errorf("%s: key %s holds %+v", p.name, p.key, si)
			}
			again, _ := json.Marshal(&si)
			if !bytes.Equal(again, raw) {
				t.Errorf("%s: kratos would write\n %s\nwe wrote\n %s", p.name, again, raw)
			}
		}
		t.Logf("FIGURE kratos: %d values decode into registry.ServiceInstance and re-encode to the same bytes, e.g. %s", len(ps), ps[1].key)
	})
	if !ok {
		return
	}

	conn, err := kgrpc.DialInsecure(context.Background(),
		kgrpc.WithEndpoint("discovery:///"+name),
		kgrpc.WithDiscovery(etcdDiscovery{cli: cli}),
		kgrpc.WithPrintDiscoveryDebugLog(false),
	)
	if err != nil {
		t.Fatalf("kratos DialInsecure: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	l := startLoad(t, pb.NewGreeterClient(conn), 2*time.Millisecond, 120*time.Second)

	ok = t.Run("kratos's client spreads calls by metadata weight", func(t *testing.T) {
		allAnswer(t, l, ps, 15*time.Second)
		want := map[string]float64{ps[0].addr: 1.0 / 6, ps[1].addr: 2.0 / 6, ps[2].addr: 3.0 / 6}
		expectShares(t, "kratos weighted round robin, weights 100/200/300", sample(l, 1200*time.Millisecond), want, 0.05)
	})
	if !ok {
		return
	}

	t.Run("weight 0 (drain) keeps kratos's calls away within 1 s", func(t *testing.T) {
		heavy := ps[2]
		lines := heavy.mark()
		sent := heavy.send("drain")
		_, done := heavy.expect(lines, 10*time.Second, "drained ")
		time.Sleep(1500 * time.Millisecond)
		last := lastAnswerBy(l.between(sent.Add(-time.Second), time.Now()), heavy.addr)
		t.Logf("FIGURE kratos, drain: the last call to %s started %s after the update returned", heavy.addr, ms(last.Sub(done.at)))
		if last.Sub(done.at) > time.Second {
			t.Errorf("kratos still called %s %v after its weight went to 0", heavy.addr, last.Sub(done.at))
		}
		expectShares(t, "after the drain", sample(l, 900*time.Millisecond),
			map[string]float64{ps[0].addr: 1.0 / 3, ps[1].addr: 2.0 / 3}, 0.05)
		l.halt()
		for _, p := range ps {
			p.quit(10 * time.Second)
		}
	})
}
