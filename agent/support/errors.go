package support

import "errors"

// ErrNoToken is returned by CheckListen when the status endpoint would listen
// on a non-loopback address without a bearer token.
var ErrNoToken = errors.New("status endpoint on a non-loopback address needs a token: set status.token_file or listen on 127.0.0.1")

// ErrBadListen is returned by CheckListen for an address that is not host:port.
var ErrBadListen = errors.New("status.listen is not a host:port address (e.g. 127.0.0.1:9876)")
