//go:build tools

// Package tools pins the Prometheus checkers that Pilothouse's desired-state
// tests run on the rendered monitoring stack (see scripts/install-promtool.sh).
// Not part of the product.
package tools

import (
	_ "github.com/prometheus/alertmanager/cmd/amtool"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
