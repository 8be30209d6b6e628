# PostgreSQL, the database of `make run DATABASE=postgres` (docs/databases.md): the
# machine's PostgreSQL 15, or Debian's installed on first use. `make setup-all` (CI) has
# it too, since tests/postgres runs the order flow on a real cluster.
# (DATABASE=sqlite, the default, needs nothing.)

ALL_TOOLS += $(STAMPS)/postgres
ifeq ($(DATABASE),postgres)
RUN_TOOLS += $(STAMPS)/postgres
endif

$(STAMPS)/postgres: scripts/install-postgres.sh
	@mkdir -p $(STAMPS)
	@$(STEP) postgres bash scripts/install-postgres.sh
	@touch $@
