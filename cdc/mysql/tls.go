package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig is source.mysql.tls: present, every connection (metadata,
// snapshot chunks and the binlog) uses TLS.
type TLSConfig struct {
	// CA is a PEM file of the CAs that may sign the server's certificate;
	// empty: the system's roots.
	CA string `yaml:"ca"`
	// Cert and Key are a PEM client certificate and key, for servers that
	// require X509 of their users; both or neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name the server's certificate must carry; default
	// the DSN's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify encrypts without checking who the server is. For
	// tests only: it gives no protection against a man in the middle.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (c *TLSConfig) validate() error {
	if (c.Cert == "") != (c.Key == "") {
		return fmt.Errorf("%s.tls: cert and key go together", prefix)
	}
	for _, f := range []struct{ key, path string }{{"ca", c.CA}, {"cert", c.Cert}, {"key", c.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s.tls.%s: %v", prefix, f.key, err)
		}
	}
	return nil
}

// build reads the files; host is the DSN's, the default server name.
func (c *TLSConfig) build(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.ca: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.tls.ca: %s holds no PEM certificate", prefix, c.CA)
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.cert: %w", prefix, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
