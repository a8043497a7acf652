// Package promsd checks that `registry list -o prometheus-sd` is read by
// Prometheus's own file service discovery (discovery/file, the code behind
// `file_sd_configs`), with label names held to the strict legacy rule
// `[a-zA-Z_][a-zA-Z0-9_]*` that Prometheus before 3.0 (and any server set
// to legacy validation) applies. scripts/test-interop.sh runs it through
// tests/interop/run.py, which gives it an etcd (REGISTRY_ENDPOINTS);
// INTEROP_REGISTRY is the `registry` binary.
package promsd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/file"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

const name = "prom-sd"

// loadWithPrometheus reads path the way Prometheus's file_sd does and
// returns the target groups it accepted; none when it refused the file.
func loadWithPrometheus(t *testing.T, path string) []*targetgroup.Group {
	t.Helper()
	conf := &file.SDConfig{Files: []string{path}, RefreshInterval: model.Duration(time.Minute)}
	registry := prometheus.NewRegistry()
	metrics := conf.NewDiscovererMetrics(registry, discovery.NewRefreshMetrics(registry))
	if err := metrics.Register(); err != nil {
		t.Fatal(err)
	}
	defer metrics.Unregister()
	d, err := file.NewDiscovery(conf, nil, metrics)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	groups := make(chan []*targetgroup.Group, 1)
	go d.Run(ctx, groups)
	select {
	case got := <-groups:
		return got
	case <-ctx.Done():
		return nil // a file it cannot read is logged and skipped: nothing is sent
	}
}

func registryCommand(args ...string) *exec.Cmd {
	return exec.Command(os.Getenv("INTEROP_REGISTRY"), args...)
}

func TestPrometheusReadsRegistryList(t *testing.T) {
	if os.Getenv("INTEROP_REGISTRY") == "" || os.Getenv("REGISTRY_ENDPOINTS") == "" {
		t.Skip("INTEROP_REGISTRY or REGISTRY_ENDPOINTS is not set: run scripts/test-interop.sh")
	}
	// Strict label names, whatever this Prometheus version's default.
	saved := model.NameValidationScheme
	model.NameValidationScheme = model.LegacyValidation
	defer func() { model.NameValidationScheme = saved }()

	// Two instances, with metadata keys a label name cannot hold as they are.
	for _, args := range [][]string{
		{"--addr", "127.0.0.1:9100", "--meta", "zone=zone1", "--meta", "app.version=v1", "--meta", "shard-id=7"},
		{"--addr", "[::1]:9101", "--meta", "weight=50"},
	} {
		cmd := registryCommand(append([]string{"register", "--name", name}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	var listed []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := registryCommand("list", name, "-o", "prometheus-sd").Output()
		if err == nil && strings.Count(string(out), `"targets"`) == 2 {
			listed = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry list never showed both instances: %q, %v", out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.json")
	if err := os.WriteFile(path, listed, 0o644); err != nil {
		t.Fatal(err)
	}

	groups := loadWithPrometheus(t, path)
	if len(groups) != 2 {
		t.Fatalf("Prometheus's file_sd read %d target groups from\n%s", len(groups), listed)
	}
	first, second := groups[0], groups[1]
	if got := first.Targets[0][model.AddressLabel]; got != "127.0.0.1:9100" {
		t.Errorf("first target %q", got)
	}
	if got := second.Targets[0][model.AddressLabel]; got != "[::1]:9101" {
		t.Errorf("second target %q", got)
	}
	for label, want := range map[model.LabelName]model.LabelValue{
		"__meta_registry_name":        name,
		"__meta_registry_zone":        "zone1",
		"__meta_registry_app_version": "v1",
		"__meta_registry_shard_id":    "7",
		"__meta_registry_port":        "9100",
		"__meta_filepath":             model.LabelValue(path),
	} {
		if got := first.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q (labels: %v)", label, got, want, first.Labels)
		}
	}
	if got := second.Labels["__meta_registry_weight"]; got != "50" {
		t.Errorf("second group's weight label %q (labels: %v)", got, second.Labels)
	}
	for _, g := range groups {
		t.Logf("FIGURE Prometheus's file_sd read target %s with %d labels: %v", g.Targets[0][model.AddressLabel], len(g.Labels), g.Labels)
	}

	// The loader does refuse what it must: a label name with a dot.
	bad := filepath.Join(dir, "bad.json")
	unmapped := strings.Replace(string(listed), "__meta_registry_app_version", "__meta_registry_app.version", 1)
	if err := os.WriteFile(bad, []byte(unmapped), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loadWithPrometheus(t, bad); got != nil {
		t.Fatalf("Prometheus accepted a label name with a dot: %v", got)
	}
}
