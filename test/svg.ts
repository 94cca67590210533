// Checking SVG files without a browser: is it well-formed XML with an <svg>
// root in the SVG namespace (what an <img> in a rendered markdown page needs),
// and what text does it show.

const NAME = '[A-Za-z_][\\w:.-]*';
const ATTRIBUTE = `\\s+${NAME}\\s*=\\s*(?:"[^"<]*"|'[^'<]*')`;
const TAG = new RegExp(`<(/?)(${NAME})((?:${ATTRIBUTE})*)\\s*(/?)>`, 'y');
const ENTITY = /&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);/y;

/** null when `text` is a well-formed SVG document; otherwise what is wrong, with where. */
export function svgProblem(text: string): string | null {
  const stack: string[] = [];
  let roots = 0;
  let rootTag = '';
  let i = 0;
  const where = (): string => `at offset ${i}: ${JSON.stringify(text.slice(i, i + 40))}`;
  while (i < text.length) {
    const c = text[i];
    if (c === '<') {
      if (text.startsWith('<?', i)) {
        const end = text.indexOf('?>', i);
        if (end < 0 || stack.length > 0 || roots > 0) return `misplaced or unterminated processing instruction ${where()}`;
        i = end + 2;
        continue;
      }
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i + 4);
        if (end < 0) return `unterminated comment ${where()}`;
        i = end + 3;
        continue;
      }
      if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i);
        if (end < 0 || stack.length === 0) return `misplaced or unterminated CDATA ${where()}`;
        i = end + 3;
        continue;
      }
      if (text.startsWith('<!DOCTYPE', i)) {
        const end = text.indexOf('>', i);
        if (end < 0 || roots > 0) return `misplaced DOCTYPE ${where()}`;
        i = end + 1;
        continue;
      }
      TAG.lastIndex = i;
      const m = TAG.exec(text);
      if (m === null) return `malformed tag ${where()}`;
      const [whole, closing, name, attributes, selfClosing] = m;
      for (const [, value] of attributes.matchAll(/=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        const problem = entities(value ?? '');
        if (problem !== null) return `${problem} in an attribute of <${name}> ${where()}`;
      }
      if (closing) {
        if (attributes.trim() !== '' || selfClosing) return `malformed end tag ${where()}`;
        const open = stack.pop();
        if (open !== name) return `</${name}> closes ${open === undefined ? 'nothing' : `<${open}>`} ${where()}`;
      } else {
        if (stack.length === 0) {
          roots++;
          if (roots > 1) return `a second root element <${name}> ${where()}`;
          rootTag = whole;
          if (name !== 'svg') return `the root element is <${name}>, not <svg>`;
        }
        if (!selfClosing) stack.push(name);
      }
      i += whole.length;
      continue;
    }
    if (c === '&') {
      ENTITY.lastIndex = i;
      if (ENTITY.exec(text) === null) return `a bare & ${where()}`;
    } else if (stack.length === 0 && !/\s/.test(c)) {
      return `text outside the root element ${where()}`;
    }
    i++;
  }
  if (stack.length > 0) return `<${stack[stack.length - 1]}> is never closed`;
  if (roots === 0) return 'no <svg> element';
  if (!/\sxmlns\s*=\s*["']http:\/\/www\.w3\.org\/2000\/svg["']/.test(rootTag)) return 'the <svg> element has no xmlns="http://www.w3.org/2000/svg"';
  if (!/\s(viewBox|width)\s*=/.test(rootTag)) return 'the <svg> element has neither a width nor a viewBox';
  return null;
}

function entities(value: string): string | null {
  for (let i = value.indexOf('&'); i >= 0; i = value.indexOf('&', i + 1)) {
    ENTITY.lastIndex = i;
    if (ENTITY.exec(value) === null) return 'a bare &';
  }
  return null;
}

/** The text of every <text> element (and its <tspan>s), entities decoded. */
export function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text\b[^>]*>([\s\S]*?)<\/text>/g)].map((m) =>
    m[1]
      .replace(/<[^>]+>/g, '')
      .replace(/&quot;/g, '"')
      .replace(/&apos;|&#39;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&')
      .trim(),
  );
}
