// Package mesh connects a Go client to the meshkit-shop mesh: it finds a service through
// Consul's health API, dials it over mutual TLS with a certificate of the mesh CA, and
// derives the gRPC retry policy from the contracts' idempotency levels.
package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Env is where the mesh is: Consul's HTTP address, this client's Consul ACL token, and
// the directory holding this client's cert.pem, key.pem and the mesh CA's ca.pem.
type Env struct {
	ConsulHTTPAddr  string
	ConsulHTTPToken string
	CertDir         string
}

// FromEnv reads CONSUL_HTTP_ADDR (default 127.0.0.1:8500), CONSUL_HTTP_TOKEN (Consul runs
// with ACLs on, default deny: without a token the catalog shows nothing) and
// MESH_CERT_DIR (required).
func FromEnv() (Env, error) {
	env := Env{
		ConsulHTTPAddr:  os.Getenv("CONSUL_HTTP_ADDR"),
		ConsulHTTPToken: os.Getenv("CONSUL_HTTP_TOKEN"),
		CertDir:         os.Getenv("MESH_CERT_DIR"),
	}
	if env.ConsulHTTPAddr == "" {
		env.ConsulHTTPAddr = "127.0.0.1:8500"
	}
	if env.CertDir == "" {
		return env, fmt.Errorf("MESH_CERT_DIR is not set (a directory with cert.pem, key.pem, ca.pem)")
	}
	return env, nil
}

// Discover returns the address (host:port) of one passing instance of service.
func (e Env) Discover(service string) (string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	url := fmt.Sprintf("http://%s/v1/health/service/%s?passing=true", e.ConsulHTTPAddr, service)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("consul: %w", err)
	}
	if e.ConsulHTTPToken != "" {
		req.Header.Set("X-Consul-Token", e.ConsulHTTPToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("consul: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("consul: GET %s: %s", url, resp.Status)
	}
	var entries []struct {
		Node    struct{ Address string }
		Service struct {
			Address string
			Port    int
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		return "", fmt.Errorf("consul: %w", err)
	}
	if len(entries) == 0 {
		return "", fmt.Errorf("consul: no passing instance of %q", service)
	}
	host := entries[0].Service.Address
	if host == "" {
		host = entries[0].Node.Address
	}
	return net.JoinHostPort(host, strconv.Itoa(entries[0].Service.Port)), nil
}

// Credentials are this client's mTLS credentials for calling service: the server's
// certificate must chain to the mesh CA and name <service>.service.consul.
func (e Env) Credentials(service string) (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(e.CertDir, "cert.pem"), filepath.Join(e.CertDir, "key.pem"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(e.CertDir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", filepath.Join(e.CertDir, "ca.pem"))
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   service + ".service.consul",
		MinVersion:   tls.VersionTLS12,
	}), nil
}

// Dial finds service in Consul and opens a channel to it over mTLS, with retries on
// UNAVAILABLE for the methods of sd the contract marks NO_SIDE_EFFECTS or IDEMPOTENT.
func (e Env) Dial(service string, sd protoreflect.ServiceDescriptor) (*grpc.ClientConn, error) {
	addr, err := e.Discover(service)
	if err != nil {
		return nil, err
	}
	creds, err := e.Credentials(service)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(RetryServiceConfig(sd)))
}

// RetryServiceConfig is the gRPC service config (JSON) the Python mesh builds too
// (services/mesh/channels.py): a retryPolicy on UNAVAILABLE for every method whose idempotency_level says it is safe.
func RetryServiceConfig(sd protoreflect.ServiceDescriptor) string {
	var names []map[string]string
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		m := methods.Get(i)
		opts, _ := m.Options().(*descriptorpb.MethodOptions)
		switch opts.GetIdempotencyLevel() {
		case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
			names = append(names, map[string]string{"service": string(sd.FullName()), "method": string(m.Name())})
		}
	}
	if len(names) == 0 {
		return "{}"
	}
	config := map[string]any{"methodConfig": []any{map[string]any{
		"name": names,
		"retryPolicy": map[string]any{
			"maxAttempts":          3,
			"initialBackoff":       "0.05s",
			"maxBackoff":           "0.5s",
			"backoffMultiplier":    2,
			"retryableStatusCodes": []string{"UNAVAILABLE"},
		},
	}}, "retryThrottling": map[string]any{"maxTokens": 10, "tokenRatio": 0.1}}
	out, _ := json.Marshal(config)
	return string(out)
}
