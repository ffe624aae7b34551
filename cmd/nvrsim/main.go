// Command nvrsim runs the NVR simulator (internal/nvrsim) on a real socket,
// and writes test firmware images. Flags and wiring only.
package main

func main() {}
