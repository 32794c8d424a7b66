import { runServices } from "@cpm/core";
import { syncDispatcher } from "./service.ts";

void runServices([syncDispatcher]);
