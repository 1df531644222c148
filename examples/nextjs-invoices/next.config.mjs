/** @type {import('next').NextConfig} */
const nextConfig = {
  poweredByHeader: false,
  // The e2e test builds into its own folder, so it never clobbers the build of a running ./run.
  distDir: process.env.NEXT_DIST_DIR || ".next",
  // forbidden() and app/forbidden.js: a refusal of the database becomes an HTTP 403 page.
  experimental: { authInterrupts: true },
  // The example has no linter set up; `next build` should not look for one.
  eslint: { ignoreDuringBuilds: true },
  // node-postgres is loaded by Node.js at run time, not bundled.
  serverExternalPackages: ["pg"],
};

export default nextConfig;
