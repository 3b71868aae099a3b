/** Experiments made of many runs: the paper's Table 1. */
export { formatTable1, table1, TABLE1_COLUMNS, TABLE1_ROWS } from './table1.js';
export type { Table1Options, Table1Row } from './table1.js';
