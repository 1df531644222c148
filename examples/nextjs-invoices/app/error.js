"use client";

export default function Error({ error }) {
  return (
    <section className="card refused">
      <h1>Something went wrong</h1>
      <p>The server could not answer this request{error?.digest ? ` (digest ${error.digest})` : ""}.</p>
    </section>
  );
}
