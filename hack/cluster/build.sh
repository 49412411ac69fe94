#!/usr/bin/env bash
# Build the control plane from source into .tools/cluster-bin/<versions>/, once: a later
# call finds the binaries and returns at once. kube-apiserver, kube-controller-manager,
# kube-scheduler (kwok fakes kubelets, not the scheduler) and etcd are pinned in go.mod;
# kwok is pinned below and built from its own module (its go.mod needs no replaces).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version() { grep -o "$1 v[0-9][0-9.]*" "$here/go.mod" | head -1 | cut -d' ' -f2; }
kube_version="$(version k8s.io/kubernetes)"
etcd_version="$(version go.etcd.io/etcd/server/v3)"
kwok_version="v0.8.0"
bin="${CLUSTER_BIN:-$root/.tools/cluster-bin/k8s-$kube_version-etcd-$etcd_version-kwok-$kwok_version}"
mkdir -p "$bin"
# Two compile jobs at most: the machine has two cores, shared.
export GOFLAGS="${GOFLAGS:--p=2} -trimpath"
# The release's own version, as Kubernetes' build stamps it (Helm checks a chart's
# kubeVersion against it; a module build would otherwise say v0.0.0-master).
minor="$(echo "$kube_version" | cut -d. -f2)"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp="$stamp -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp="$stamp -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
cd "$here"
build() { # name, package, extra ldflags
  if [ ! -x "$bin/$1" ]; then
    echo "building $1 ($2)" >&2
    go build -ldflags="-s -w ${3:-}" -o "$bin/$1.tmp" "$2"
    mv "$bin/$1.tmp" "$bin/$1"
  fi
}
build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$stamp"
if [ ! -x "$bin/kwok" ]; then
  echo "building kwok sigs.k8s.io/kwok/cmd/kwok@$kwok_version" >&2
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
  mv "$tmp/kwok" "$bin/kwok"
  rmdir "$tmp"
fi
echo "$bin"
