// Command etcd is etcd's own main, built at the version k8s.io/kubernetes pins, so the
// cluster tests need no Debian etcd whose release may not match the API server's.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
