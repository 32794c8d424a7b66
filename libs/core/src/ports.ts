/**
 * What the services of one process offer each other in place of a gRPC client: the composition
 * root's registry. A service that runs in this process provides its in-process implementation
 * of a port under the port's key when it starts; a service that calls it takes it from here,
 * or builds the gRPC client when the callee runs in another process (CPM_TARGET). Keys are
 * typed, so a port is taken with the type it was provided with.
 */
export interface PortKey<T> {
  readonly name: string;
  /** Type only: never set. */
  readonly __type?: T;
}

export function portKey<T>(name: string): PortKey<T> {
  return { name };
}

export class PortRegistry {
  private readonly ports = new Map<PortKey<unknown>, unknown>();

  provide<T>(key: PortKey<T>, impl: T): void {
    if (this.ports.has(key)) throw new Error(`port ${key.name} is provided twice in this process`);
    this.ports.set(key, impl);
  }

  /** The in-process implementation, or undefined when no service of this process provides it. */
  get<T>(key: PortKey<T>): T | undefined {
    return this.ports.get(key) as T | undefined;
  }
}
