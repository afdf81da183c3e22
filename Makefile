# unified_fdw: PGXS build.  libcurl and jansson come from pkg-config; the
# connector definitions are installed under $(sharedir)/extension/unified_fdw/.

MODULE_big = unified_fdw
OBJS = \
	src/unified_fdw.o \
	src/option.o \
	src/connector.o \
	src/request.o \
	src/deparse.o \
	src/dialect_odata.o \
	src/dialect_odata4.o \
	src/dialect_odata2.o \
	src/dialect_suiteql.o \
	src/page.o \
	src/http.o \
	src/auth.o \
	src/oauth1.o \
	src/upstream_json.o \
	src/import.o \
	src/connect.o \
	src/authorize.o \
	src/token_store.o \
	src/status.o

EXTENSION = unified_fdw
DATA = sql/unified_fdw--0.1.sql
PGFILEDESC = "unified_fdw - purchasing data from ERP APIs"

REGRESS = options connectors bc_scan bc_pushdown dialects errors netsuite sap_scan sap_errors sap_values lifecycle transport_options limits authorize
REGRESS_OPTS = --load-extension=unified_fdw

PKG_CONFIG ?= pkg-config
PG_CPPFLAGS = -I$(srcdir)/src $(shell $(PKG_CONFIG) --cflags libcurl jansson)
PG_CFLAGS = -Wall -Werror
SHLIB_LINK = $(shell $(PKG_CONFIG) --libs libcurl jansson)

CONNECTORS = $(sort $(wildcard $(srcdir)/connectors/*.json))

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

install: install-connectors
install-connectors:
	$(MKDIR_P) '$(DESTDIR)$(datadir)/extension/unified_fdw'
	$(INSTALL_DATA) $(CONNECTORS) '$(DESTDIR)$(datadir)/extension/unified_fdw/'

uninstall: uninstall-connectors
uninstall-connectors:
	rm -rf '$(DESTDIR)$(datadir)/extension/unified_fdw'

.PHONY: install-connectors uninstall-connectors
