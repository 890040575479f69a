/**
 * Injected at the top of every Node build output (tsup `inject`), so that each of the package's
 * Node entry points (`tdb-js`, `tdb-js/internals`, `tdb-js/autodiff`, the CLI, ...) runs on
 * onnxruntime-node and reads directories and the hub without further set-up.
 *
 * @module
 */
import { useNodePlatform } from "./platform-node.js";

useNodePlatform(false);
