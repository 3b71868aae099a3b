/**
 * The report page: one self-contained HTML file (styles inline, charts as inline SVG, no script, nothing fetched),
 * so that it opens from a file anywhere and can be archived with the runs.
 */
export interface Section {
  title: string;
  /** A sentence or two on what the section shows. */
  intro?: string;
  /** HTML blocks: figures and tables, laid out in a wrapping row. */
  blocks: string[];
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A chart (its SVG) with a caption. */
export function figure(svg: string, caption: string): string {
  return `<figure class="chart">${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

/** A table with a header row; cells are text (escaped). */
export function table(header: readonly string[], rows: readonly (readonly string[])[], caption?: string): string {
  const head = `<tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${escapeHtml(c)}</th>` : `<td>${escapeHtml(c)}</td>`)).join('')}</tr>`,
    )
    .join('');
  return `<figure class="table"><table>${head}${body}</table>${caption ? `<figcaption>${escapeHtml(caption)}</figcaption>` : ''}</figure>`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1320px; padding: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 32px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta, .intro, figcaption { color: #555; } .intro { margin: 0 0 10px; max-width: 900px; }
.blocks { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; margin-top: 4px; max-width: 560px; }
table { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f6f6f6; } th[scope=row] { text-align: left; font-weight: 500; }
`;

export function page(title: string, meta: string, sections: readonly Section[]): string {
  const body = sections
    .map(
      (s) =>
        `<section><h2>${escapeHtml(s.title)}</h2>${s.intro ? `<p class="intro">${escapeHtml(s.intro)}</p>` : ''}<div class="blocks">${s.blocks.join('\n')}</div></section>`,
    )
    .join('\n');
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>\n<body><h1>${escapeHtml(title)}</h1><p class="meta">${escapeHtml(meta)}</p>\n${body}\n</body></html>\n`
  );
}
