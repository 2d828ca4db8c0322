// The server's default ports, apart from the server itself so that the CLI
// can show them without loading it.

/** 2049/2049/111 as root; high ports otherwise. */
export function defaultPorts(): { nfs: number; mount: number; portmap: number } {
  return process.getuid?.() === 0 ? { nfs: 2049, mount: 2049, portmap: 111 } : { nfs: 20490, mount: 20490, portmap: 10111 };
}
