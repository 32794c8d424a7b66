import type { ConfigServiceServer } from "@cpm/proto";
import type { AsyncService } from "@cpm/grpc-kit";
import type { ConfigStore } from "../store.ts";

/** ConfigService handlers for this resource (CRUD with validation and referential checks). */
export function certificateHandlers(_store: ConfigStore): AsyncService<ConfigServiceServer> {
  return {};
}
