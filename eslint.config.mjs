// Type-aware lint for every TypeScript file of the workspace (npm run lint, part of npm test).
// Every rule turned off or relaxed below says why.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      "**/dist/**",
      ".cache/**",
      "libs/proto/src/gen/**",
      "services/config-service/src/generated/**",
      "services/web-console/src/gen/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          // Prisma's CLI configs sit beside the package's tsconfig, outside its src/.
          allowDefaultProject: [
            "services/config-service/prisma.config.ts",
            "services/config-service/prisma.pg.config.ts",
          ],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // node:test's test() and describe() return promises that the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["test", "it", "describe", "suite", "before", "after"] },
          ],
        },
      ],
      "@typescript-eslint/no-unused-vars": [
        "error",
        // A leading underscore marks a parameter that an interface requires and this implementation ignores.
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
      // Off: an async function that awaits nothing still turns a throw into a rejected promise, and
      // the implementations of async ports here (authenticators, fakes of a client) rely on that.
      // Removing `async` to satisfy the rule would make those throw synchronously instead.
      "@typescript-eslint/require-await": "off",
      // gRPC status codes by name (status.RESOURCE_EXHAUSTED), never by number: `err.code === 8`,
      // `err?.code == 14`, `8 !== err.code`, and a number as the code of an error-shaped object
      // (`{ code: 14, details }`, `Object.assign(new Error(), { code: 9 })`). A comparison with 0
      // and a bare `{ code: 1 }` are left alone: that is how exit codes are checked and written.
      "no-restricted-syntax": [
        "error",
        {
          selector:
            "BinaryExpression[operator=/^[!=]==?$/]:matches([left.property.name='code'], [left.expression.property.name='code'])[right.type='Literal'][right.raw=/^[1-9][0-9]*$/]",
          message: "Compare a gRPC code with its status.* name, not a number.",
        },
        {
          selector:
            "BinaryExpression[operator=/^[!=]==?$/]:matches([right.property.name='code'], [right.expression.property.name='code'])[left.type='Literal'][left.raw=/^[1-9][0-9]*$/]",
          message: "Compare a gRPC code with its status.* name, not a number.",
        },
        {
          selector:
            "ObjectExpression:has(> Property[key.name=/^(details|metadata)$/]) > Property[key.name='code'][value.type='Literal'][value.raw=/^[0-9]+$/]",
          message: "Write a gRPC code as its status.* name, not a number.",
        },
        {
          selector:
            "CallExpression[callee.object.name='Object'][callee.property.name='assign'][arguments.0.type='NewExpression'] > ObjectExpression > Property[key.name='code'][value.type='Literal'][value.raw=/^[0-9]+$/]",
          message: "Write a gRPC code as its status.* name, not a number.",
        },
      ],
    },
  },
  {
    // The few plain JavaScript files (entry shims, a healthcheck, a schema script) run on Node
    // as they are: JavaScript's recommended rules, no type information.
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        Buffer: "readonly",
      },
    },
  },
);
