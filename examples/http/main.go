// Command http serves net/http over tapstack on a TAP device: a page at /
// and /bytes?n=N, which streams N bytes (for throughput tests with curl).
// It takes the same TAP flags as examples/echo.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/tapstack/tapstack/examples/internal/tapnet"
	"github.com/tapstack/tapstack/stack"
)

// maxBytes bounds /bytes so that one request cannot stream forever.
const maxBytes = 1 << 34

func main() {
	var f tapnet.Flags
	fs := flag.NewFlagSet("http", flag.ContinueOnError)
	f.Register(fs)
	port := fs.Int("port", 80, "HTTP port")
	backlog := fs.Int("backlog", 4096, "listen(2) backlog (clamped by net.core.somaxconn)")
	reuseport := fs.Int("reuseport", 1, "SO_REUSEPORT listeners on the port, each with its own queues and accept loop")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *port < 1 || *port > 65535 {
		tapnet.Exit("http", tapnet.UsageError{Err: fmt.Errorf("-port %d: want 1..65535", *port)})
	}
	if *reuseport < 1 || *reuseport > 1024 {
		tapnet.Exit("http", tapnet.UsageError{Err: fmt.Errorf("-reuseport %d: want 1..1024", *reuseport)})
	}
	env, err := f.Up()
	if err != nil {
		tapnet.Exit("http", err)
	}
	lns, err := env.ListenTCP(netip.AddrPortFrom(env.Addr.Addr(), uint16(*port)), *backlog, *reuseport)
	if err != nil {
		env.Close()
		tapnet.Exit("http", err)
	}
	srv := &http.Server{Handler: Handler(env.Stack), ReadHeaderTimeout: 10 * time.Second}
	for _, ln := range lns {
		go srv.Serve(ln) // an accept loop per listener
	}
	log.Printf("tapstack http: http://%s:%d/ on %s", env.Addr.Addr(), *port, f.Tap)
	sig := env.Wait(os.Stdout)
	log.Printf("%v: shutting down", sig)
	srv.Close()
	env.Report(os.Stdout)
	env.Close()
}

// chunk is the pattern /bytes repeats (byte i%64K = i), made once: a
// 64 KB buffer per request was most of what a small request allocated.
var chunk = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// Handler serves the example's pages.
func Handler(st *stack.Stack) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>tapstack</title><h1>Hello from tapstack</h1>"+
			"<p>This page came over a userspace TCP/IP stack. You are %s.</p>"+
			"<p><a href=\"/bytes?n=1048576\">1 MiB of bytes</a></p>\n", r.RemoteAddr)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, fmt.Sprintf("n must be an integer in [0, %d]", int64(maxBytes)), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			m := min(n, int64(len(chunk)))
			if _, err := w.Write(chunk[:m]); err != nil {
				return
			}
			n -= m
		}
	})
	return mux
}
