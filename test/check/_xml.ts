/**
 * A small strict XML parser for tests: enough to check that JUnit reports are well-formed and to
 * read their elements, attributes and (decoded) text.
 */
/** An element of the parsed document. */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Decodes entity references; throws on a bare `&`, an unknown entity or a raw `<`. */
function decode(s: string, where: string): string {
  if (s.includes("<")) throw new Error(`raw < in ${where}`);
  return s.replace(/&([^;]*);?/g, (m, name: string) => {
    if (!m.endsWith(";")) throw new Error(`bare & in ${where}`);
    if (name.startsWith("#x")) return String.fromCodePoint(parseInt(name.slice(2), 16));
    if (name.startsWith("#")) return String.fromCodePoint(parseInt(name.slice(1), 10));
    const v = ENTITIES[name];
    if (v === undefined) throw new Error(`unknown entity &${name}; in ${where}`);
    return v;
  });
}

/** A strict little XML parser: prolog, nested elements, quoted attributes, text; throws when not well-formed. */
export function parseXml(doc: string): XmlElement {
  if (/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u.test(doc)) throw new Error("character not allowed in XML");
  let s = doc.replace(/^<\?xml[^?]*\?>\s*/, "");
  const root: XmlElement = { name: "#root", attrs: {}, children: [], text: "" };
  const stack = [root];
  const tag = /^<(\/?)([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*="[^"]*")*)\s*(\/?)>/;
  while (s.length > 0) {
    const top = stack[stack.length - 1]!;
    if (s.startsWith("<")) {
      const m = tag.exec(s);
      if (!m) throw new Error(`malformed tag at ${JSON.stringify(s.slice(0, 40))}`);
      const [all, close, name, attrText, selfClose] = m as unknown as [string, string, string, string, string];
      s = s.slice(all.length);
      if (close) {
        if (top.name !== name) throw new Error(`</${name}> closes <${top.name}>`);
        stack.pop();
        continue;
      }
      const attrs: Record<string, string> = {};
      for (const a of attrText.matchAll(/([A-Za-z_][\w.-]*)="([^"]*)"/g)) {
        if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]}`);
        attrs[a[1]!] = decode(a[2]!, `${name}@${a[1]}`);
      }
      const el: XmlElement = { name, attrs, children: [], text: "" };
      top.children.push(el);
      if (!selfClose) stack.push(el);
    } else {
      const i = s.indexOf("<");
      const raw = i < 0 ? s : s.slice(0, i);
      s = i < 0 ? "" : s.slice(i);
      if (top === root && raw.trim() !== "") throw new Error("text outside the root element");
      top.text += decode(raw, top.name);
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (root.children.length !== 1) throw new Error("not exactly one root element");
  return root.children[0]!;
}
