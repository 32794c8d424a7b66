import { runServices } from "@cpm/core";
import { configService } from "./service.ts";

void runServices([configService]);
