//go:build tools

// Package tools names the command hack/build.sh builds, so that go.mod pins its version.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
