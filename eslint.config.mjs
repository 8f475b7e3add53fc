// ESLint flat config: ESLint's and typescript-eslint's recommended rules over the program,
// components, lib, tools, local target, policy pack and tests (scripts/lint.sh runs it).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["node_modules/", "policy/node_modules/", "bin/", "examples/**/node_modules/", "examples/**/dist/", "bench/out/", "tmp/"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      // Unused code is an error, except `_`-prefixed parameters (provider methods keep their signature).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      eqeqeq: ["error", "always"],
      "prefer-const": "error",
      "no-var": "error",
    },
  },
  {
    // Dynamic providers are serialized by Pulumi with their closure: the modules they use must be
    // require()d inside the provider's functions, not imported at the top of the file.
    files: ["components/command.ts", "components/generatedSecret.ts"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // Tests read JSON from the CLI and the state, and record mock inputs, as untyped values; so do
    // the harness's stack outputs and deploy journal (local/harness.ts), which they read.
    files: ["test/**/*.ts", "local/harness.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    // Example apps, the test reporter, the program's entry and the providers' host are plain CommonJS run by node.
    files: ["**/*.js", "**/*.cjs"],
    languageOptions: {
      sourceType: "commonjs",
      globals: {
        require: "readonly",
        module: "writable",
        exports: "writable",
        process: "readonly",
        console: "readonly",
        __dirname: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        URL: "readonly",
      },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
