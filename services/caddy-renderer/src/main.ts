import { runServices } from "@cpm/core";
import { caddyRenderer } from "./service.ts";

void runServices([caddyRenderer]);
