/**
 * How the database steps (the deploy's backup, the rollback's restore) connect pg_dump, pg_restore
 * and psql to DATABASE_URL with no secret on any command line (issue 9). Kept out of lib/scripts'
 * exports: it is a part of those builders, not a builder of its own.
 */
import { quote } from "./shell";

/**
 * Node program (run on the server): reads a postgres:// or postgresql:// URL on standard input and
 * writes, into the folder named by its argument, a libpq service file `pg_service.conf` (service
 * `nostromo`: user, host(s), port(s), dbname and every URL parameter such as sslmode) and a
 * password file `pgpass` (`*:*:*:*:password`), both 0600. It never prints the URL; a value libpq's
 * files cannot hold (a line break, trailing blanks in the service file) is refused.
 */
export const PG_CONNECTION_JS = [
  `const fs=require("fs"),path=require("path");`,
  `const fail=(m)=>{console.error("DATABASE_URL: "+m+" (value not shown)");process.exit(2)};`,
  `const u=fs.readFileSync(0,"utf8").replace(/\\r?\\n$/,"");`,
  `const m=/^postgres(?:ql)?:\\/\\/(?:([^@\\/?#]*)@)?([^\\/?#]*)(?:\\/([^?#]*))?(?:\\?([^#]*))?$/.exec(u);`,
  `if(!m)fail("not a postgres: or postgresql: URL");`,
  `const dec=(s)=>{try{return decodeURIComponent(s)}catch(e){fail("bad percent-encoding")}};`,
  `const o={};let pw="";`,
  `if(m[1]!==undefined){const i=m[1].indexOf(":");o.user=dec(i<0?m[1]:m[1].slice(0,i));if(i>=0)pw=dec(m[1].slice(i+1));if(!o.user)delete o.user}`,
  `if(m[2]){const hs=[],ps=[];for(const h of m[2].split(",")){const x=/^(\\[[^\\]]*\\]|[^:\\[\\]]*)(?::(\\d*))?$/.exec(h);if(!x)fail("bad host list");hs.push(dec(x[1].replace(/^\\[|\\]$/g,"")));ps.push(x[2]||"")}`,
  `if(hs.some(Boolean))o.host=hs.join(",");if(ps.some(Boolean))o.port=ps.join(",")}`,
  `if(m[3])o.dbname=dec(m[3]);`,
  `for(const kv of (m[4]||"").split("&").filter(Boolean)){const i=kv.indexOf("=");if(i<0)fail("URL parameter without a value");const k=dec(kv.slice(0,i)),v=dec(kv.slice(i+1));`,
  `if(k==="password")pw=v;else if(k==="ssl"){if(v==="true")o.sslmode="require";else fail("ssl must be true")}else if(/^[a-z_]+$/.test(k))o[k]=v;else fail("bad URL parameter name")}`,
  `for(const v of Object.values(o))if(/[\\r\\n]|\\s$/.test(v))fail("a value has a line break or trailing blanks");`,
  `if(/[\\r\\n]/.test(pw))fail("the password has a line break");`,
  `const d=process.argv[1];`,
  `fs.writeFileSync(path.join(d,"pg_service.conf"),"[nostromo]\\n"+Object.entries(o).map(([k,v])=>k+"="+v+"\\n").join(""),{mode:0o600});`,
  `fs.writeFileSync(path.join(d,"pgpass"),pw?"*:*:*:*:"+pw.replace(/[\\\\:]/g,"\\\\$&")+"\\n":"",{mode:0o600});`,
].join("");

/**
 * Lines that connect the libpq tools (pg_dump, pg_restore, psql) to the database of the shell
 * variable DATABASE_URL without the URL or its password on any command line: the URL goes
 * through a pipe from the shell's builtin printf to a node program that writes a 0600 service
 * file and password file into `tmpDir` (a shell expression naming a private folder, 0700), then
 * PGSERVICEFILE, PGSERVICE and PGPASSFILE are exported and DATABASE_URL is unset. pg_dump and psql
 * connect with no --dbname; pg_restore with `--dbname=service=nostromo`.
 */
export function pgConnectionLines(tmpDir: string): string[] {
  return [
    `printf '%s\\n' "$DATABASE_URL" | node -e ${quote(PG_CONNECTION_JS)} ${tmpDir}`,
    `unset DATABASE_URL`,
    `export PGSERVICEFILE=${tmpDir}/pg_service.conf PGSERVICE=nostromo PGPASSFILE=${tmpDir}/pgpass`,
  ];
}
