export * from "./frame.ts";
export * from "./decoder.ts";
