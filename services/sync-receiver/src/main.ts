import { runServices } from "@cpm/core";
import { syncReceiver } from "./service.ts";

void runServices([syncReceiver]);
