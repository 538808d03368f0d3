// Command etcd is the etcd server of the test control plane, built from the
// etcd server module at the release the pinned Kubernetes is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
