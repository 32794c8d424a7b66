import { runServices } from "@cpm/core";
import { webConsole } from "./service.ts";

void runServices([webConsole]);
