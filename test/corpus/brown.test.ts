/**
 * The Brown reader: tag stripping and spacing on hand-written tagged samples (expected texts
 * written by hand), and the real corpus read through the Node adapter.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brownDocuments, brownTaggedToText, brownWord, readBrownCatalog } from "../../src/corpus/brown.js";
import { memoryFiles } from "../../src/io/files.js";
import { brownCorpus, brownCorpusDir, brownCorpusFiles } from "../../src/corpus/node.js";
import { rejected } from "../helpers/errors.js";

const enc = (s: string) => new TextEncoder().encode(s);

describe("brownTaggedToText", () => {
  it("strips tags at the last slash", () => {
    expect(brownWord("The/at")).toBe("The");
    expect(brownWord("1/2/cd")).toBe("1/2");
    expect(brownWord("//in")).toBe("/");
    expect(brownWord("Atlanta's/np$")).toBe("Atlanta's");
    expect(brownWord("noslash")).toBe("noslash");
  });

  it("joins words with the documented spacing", () => {
    const tagged = [
      "",
      "",
      "\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.",
      "",
      "",
      "\tHe/pps said/vbd ,/, ``/`` Only/rb (/( a/at few/ap )/) ;/. why/wrb ?/. ''/''",
      "\tIt/pps was/bedz won/vbn by/in Ivan/np Allen/np Jr./np ./. Half/abn a/at 1/2/cd cup/nn --/-- and/cc //in so/rb on/rb !/.",
      "",
      "\tA/at '/' pro/jj '/' letter/nn and/cc a/at '/' con/jj '/' one/cd :/: done/vbn ./.",
      "",
    ].join("\n");
    expect(brownTaggedToText(tagged)).toBe(
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.' +
        "\n\n" +
        'He said, "Only (a few); why?" It was won by Ivan Allen Jr. Half a 1/2 cup -- and / so on!' +
        "\n\n" +
        "A 'pro' letter and a 'con' one: done.",
    );
  });

  it("restarts single-quote pairing in each paragraph and drops nothing but the doubled period", () => {
    expect(brownTaggedToText("\tsay/vb '/' hi/uh\n\n\t'/' yes/rb '/' ./.\n")).toBe("say 'hi\n\n'yes'.");
    expect(brownTaggedToText("\tU.S./np ./.\n")).toBe("U.S.");
    expect(brownTaggedToText("\tend/nn ./. ./.\n")).toBe("end.");
    expect(brownTaggedToText("\n\n\n")).toBe("");
  });
});

describe("brownDocuments", () => {
  it("reads every document of the installed package in catalog order", async () => {
    const catalog = await readBrownCatalog(brownCorpusFiles());
    expect(catalog.length).toBe(500);
    expect(catalog[0]).toEqual({ id: "ca01", category: "news" });
    expect(new Set(catalog.map((e) => e.category)).size).toBe(15);
    const ids: string[] = [];
    let words = 0;
    for await (const doc of brownCorpus()) {
      ids.push(doc.id);
      // Every tagged token is a word of the text, or a quote token turned into a quote character
      // (or a doubled period dropped): count the tagged tokens independently from the raw file.
      if (doc.id === "ca01") {
        expect(doc.text.startsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election")).toBe(true);
        const raw = readFileSync(join(brownCorpusDir(), "ca01"), "utf8");
        const tokens = raw.split(/\s+/).filter(Boolean);
        expect(doc.text).not.toMatch(/\/[a-z]/); // no tag left
        expect(doc.text.split(/\s+/).length).toBeLessThan(tokens.length);
        expect(doc.text).not.toMatch(/ [,.;:?!)]/);
      }
      words += doc.text.split(/\s+/).length;
    }
    expect(ids).toEqual(catalog.map((e) => e.id));
    expect(words).toBeGreaterThan(900_000);
  });

  it("reads through any ModelFiles adapter, and names missing files", async () => {
    const files = memoryFiles("mem", { "cats.txt": enc("x01 news\nx02 fiction\n"), x01: enc("\tHi/uh ./.\n"), x02: enc("\tBye/uh !/.\n") });
    const docs = [];
    for await (const d of brownDocuments(files)) docs.push(d);
    expect(docs).toEqual([
      { id: "x01", category: "news", text: "Hi." },
      { id: "x02", category: "fiction", text: "Bye!" },
    ]);
    const missing = memoryFiles("mem", { "cats.txt": enc("x01 news\n") });
    expect((await rejected(brownDocuments(missing).next())).code).toBe("E_MISSING_FILE");
    expect((await rejected(brownDocuments(memoryFiles("empty", {})).next())).code).toBe("E_MISSING_FILE");
    expect((await rejected(brownDocuments(files, { split: "test" as "all" }).next())).code).toBe("E_BAD_OPTION");
  });
});
