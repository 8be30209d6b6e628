# Local dev agent, used with `consul agent -dev` (make consul, make run, tests).
# One node acting as server, loopback only, Connect (service mesh CA + intentions) on.
# Ports not set here are Consul's defaults (HTTP 8500, gRPC 8502, DNS 8600); tests move
# them all to free loopback ports on the command line.
datacenter  = "dc1"
bind_addr   = "127.0.0.1"
client_addr = "127.0.0.1"
log_level   = "WARN"

connect {
  enabled = true
}

ui_config {
  enabled = true
}
