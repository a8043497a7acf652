// Peer: registering with Go's etcd client the way gRPC-go services do,
// under the benchmark's driver protocol (bench/src/driver.rs):
//
//	go-peer ENDPOINTS
//
// One concurrency.Session per process (one lease, kept alive by the
// client's own keepalive loop) and an endpoints.Manager from
// go.etcd.io/etcd/client/v3/naming/endpoints: register is AddEndpoint with
// the session's lease, deregister is DeleteEndpoint, many at once is
// Manager.Update in transactions of 128 operations. Like the seed, it does
// not register again once the session's lease is lost.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
)

const ttl = 10

var metadata = map[string]interface{}{"region": "beijing", "zone": "zone1", "deployment": "red", "weight": 100, "scheme": "grpc"}

// addr is registration i's address, as the Rust side makes them.
func addr(i int) string {
	return fmt.Sprintf("127.0.%d.%d:%d", i/60000/250, 1+i/60000%250, 1+i%60000)
}

func endpoint(address string) endpoints.Endpoint {
	meta := map[string]interface{}{}
	for k, v := range metadata {
		meta[k] = v
	}
	host, port, _ := strings.Cut(address, ":")
	meta["ip"] = host
	meta["port"], _ = strconv.Atoi(port)
	return endpoints.Endpoint{Addr: address, Metadata: meta}
}

// threadsAndRSS reads this process's OS thread count and VmRSS (KiB).
func threadsAndRSS() (int, int) {
	data, _ := os.ReadFile("/proc/self/status")
	var threads, rss int
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return threads, rss
}

func clientVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "go.etcd.io/etcd/client/v3" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

// addMany registers entries through Manager.Update, 128 per transaction.
func addMany(ctx context.Context, em endpoints.Manager, target string, from, n int, lease clientv3.LeaseID) error {
	for start := from; start < from+n; start += 128 {
		var ups []*endpoints.UpdateWithOpts
		for i := start; i < from+n && i < start+128; i++ {
			ups = append(ups, endpoints.NewAddUpdateOpts(target+"/"+addr(i), endpoint(addr(i)), clientv3.WithLease(lease)))
		}
		if err := em.Update(ctx, ups); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	threadsBefore, rssBefore := threadsAndRSS()
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-peer ENDPOINTS")
		os.Exit(2)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Args[1], ","), DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer cli.Close()
	ctx := context.Background()
	session, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer session.Close()
	em, err := endpoints.NewManager(cli, "bench-peer")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	holdEm, err := endpoints.NewManager(cli, "footprint-peer")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	held := 0 // registrations `hold` made
	counter := 0

	handlers := map[string]func(n int) (map[string]interface{}, error){
		"info": func(int) (map[string]interface{}, error) {
			return map[string]interface{}{
				"client":  "go.etcd.io/etcd/client/v3",
				"version": clientVersion(),
				"how": "one concurrency.Session (one lease, the client's keepalive loop), naming/endpoints " +
					"AddEndpoint/DeleteEndpoint with the session's lease, Manager.Update 128 per transaction for many; " + runtime.Version(),
			}, nil
		},
		"latency": func(n int) (map[string]interface{}, error) {
			register := make([]float64, 0, n)
			deregister := make([]float64, 0, n)
			for j := 0; j < n; j++ {
				counter++
				address := fmt.Sprintf("127.0.0.1:%d", 1+counter%60000)
				key := "bench-peer/" + address
				start := time.Now()
				if err := em.AddEndpoint(ctx, key, endpoint(address), clientv3.WithLease(session.Lease())); err != nil {
					return nil, err
				}
				register = append(register, float64(time.Since(start).Nanoseconds())/1e3)
				start = time.Now()
				if err := em.DeleteEndpoint(ctx, key); err != nil {
					return nil, err
				}
				deregister = append(deregister, float64(time.Since(start).Nanoseconds())/1e3)
			}
			return map[string]interface{}{"register_us": register, "deregister_us": deregister}, nil
		},
		"bulk": func(n int) (map[string]interface{}, error) {
			bulkEm, err := endpoints.NewManager(cli, "bulk-peer")
			if err != nil {
				return nil, err
			}
			start := time.Now()
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
			if err != nil {
				return nil, err
			}
			if err := addMany(ctx, bulkEm, "bulk-peer", 0, n, s.Lease()); err != nil {
				return nil, err
			}
			secs := time.Since(start).Seconds()
			s.Close()
			return map[string]interface{}{"secs": secs}, nil
		},
		"hold": func(n int) (map[string]interface{}, error) {
			// Under the process's one session, as its registrations live.
			if err := addMany(ctx, holdEm, "footprint-peer", 0, n, session.Lease()); err != nil {
				return nil, err
			}
			held = n
			threads, rss := threadsAndRSS()
			return map[string]interface{}{"threads": threads, "rss_kb": rss, "threads_before": threadsBefore, "rss_kb_before": rssBefore}, nil
		},
		"release": func(int) (map[string]interface{}, error) {
			for start := 0; start < held; start += 128 {
				var ups []*endpoints.UpdateWithOpts
				for i := start; i < held && i < start+128; i++ {
					ups = append(ups, endpoints.NewDeleteUpdateOpts("footprint-peer/"+addr(i)))
				}
				if err := holdEm.Update(ctx, ups); err != nil {
					return nil, err
				}
			}
			held = 0
			return map[string]interface{}{}, nil
		},
	}

	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for count := 0; count < 10000 && in.Scan(); count++ {
		words := strings.Fields(in.Text())
		if len(words) == 0 {
			continue
		}
		if words[0] == "quit" {
			break
		}
		var answer map[string]interface{}
		handler, ok := handlers[words[0]]
		n := 0
		if len(words) > 1 {
			n, _ = strconv.Atoi(words[1])
		}
		if !ok {
			answer = map[string]interface{}{"error": "unknown command " + words[0]}
		} else if a, err := handler(n); err != nil {
			answer = map[string]interface{}{"error": err.Error()}
		} else {
			answer = a
		}
		line, _ := json.Marshal(answer)
		out.Write(line)
		out.WriteString("\n")
		out.Flush()
	}
}
