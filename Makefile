# Build and install whisper-backup: the six wsp-* tools, the whisper-backup command that runs
# them (whisper-restore: scripts/restore.sh), man pages, bash and zsh completions, systemd units and a cron example.
#
#   make                                  release build (Swift runtime linked in) + man pages
#   make install PREFIX=/usr/local        (DESTDIR=... for staging; SYSCONFDIR=/etc)
#   make uninstall PREFIX=/usr/local
#   make deb                              dist/whisper-backup_VERSION_ARCH.deb (dpkg-deb)
#   make check-install                    the install, package and operations tests
#
# Man pages of the tools and of whisper-backup come from swift-argument-parser's
# generate-manual plugin, their completions from --generate-completion-script: none of them is
# written by hand, so none can drift.

PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/whisper-backup
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR  ?= /etc

SWIFT   ?= swift
# A build folder of its own: the static-runtime flags differ from a plain `swift build -c
# release`, and sharing .build would rebuild everything each time one switched.
SCRATCH ?= .build-dist
SWIFTPM  = $(SWIFT) build --scratch-path $(SCRATCH) -c release -Xswiftc -static-stdlib
PLUGIN   = $(SWIFT) package --scratch-path $(SCRATCH) -c release -Xswiftc -static-stdlib
BIN      = $(SCRATCH)/release
OUT      = $(SCRATCH)/dist
TOOLS    = wsp-find wsp-snap wsp-push wsp-pull wsp-merge wsp-prune
COMMANDS = $(TOOLS) whisper-backup
ETCFILES = default/whisper-backup logrotate.d/whisper-backup
VERSION  = $(shell sed -n 's/^public let wspVersion = "\(.*\)"/\1/p' Sources/WhisperBackup/Version.swift)
ifeq ($(VERSION),)
$(error cannot read wspVersion from Sources/WhisperBackup/Version.swift)
endif
# Man page date: the last commit's, so a rebuild of the same tree gives the same pages.
MANDATE  = $(shell git log -1 --format=%cs 2>/dev/null || date +%F)

INSTALL  ?= install
STRIP    ?= strip

.PHONY: all build man completions install install-files uninstall deb check-install clean-dist

all: build man completions

# SwiftPM knows what changed; always ask it (a no-op build takes a few seconds).
build:
	$(SWIFTPM)

# The plugin builds the package (a no-op after `build`: same flags) and runs generate-manual
# on each tool, when a tool is newer than the pages. Blank lines in --help discussions become
# paragraph breaks.
man: build
	@mkdir -p $(OUT)/man1
	@if [ ! -e $(OUT)/man1/.tools ] || [ -n "$$(find $(addprefix $(BIN)/,$(COMMANDS)) -newer $(OUT)/man1/.tools)" ]; then \
	    echo "$(PLUGIN) generate-manual --date $(MANDATE)"; \
	    $(PLUGIN) generate-manual --date $(MANDATE) --authors 'whisper-backup maintainers' >/dev/null || exit 1; \
	    for t in $(COMMANDS); do \
	        sed 's/^$$/.Pp/' $(SCRATCH)/plugins/GenerateManual/outputs/$$t/$$t.1 > $(OUT)/man1/$$t.1 || exit 1; \
	    done; \
	    sed -i '/^\.Sh NAME$$/{n;s/^\.Nm whisper-backup$$/.Nm whisper-backup ,\n.Nm whisper-restore/}' $(OUT)/man1/whisper-backup.1; \
	    touch $(OUT)/man1/.tools; \
	fi
	printf '.so man1/whisper-backup.1\n' > $(OUT)/man1/whisper-restore.1

completions: build
	@mkdir -p $(OUT)/bash $(OUT)/zsh
	@for t in $(COMMANDS); do \
	    $(BIN)/$$t --generate-completion-script bash > $(OUT)/bash/$$t && \
	    $(BIN)/$$t --generate-completion-script zsh > $(OUT)/zsh/_$$t || exit 1; \
	done
	@# whisper-restore (whisper-backup restore) completes as whisper-backup.
	echo 'complete -o filenames -F _whisper-backup whisper-restore' >> $(OUT)/bash/whisper-backup
	sed -i '1s/^#compdef whisper-backup$$/#compdef whisper-backup whisper-restore/' $(OUT)/zsh/_whisper-backup

# Installs what `all` built; run `make` first as yourself, then `sudo make install`.
install: all
	@$(MAKE) --no-print-directory install-files

# The install step alone (packaging/build-deb.sh stages the package with it).
install-files:
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
	    $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	@for t in $(COMMANDS); do \
	    echo "$(INSTALL) -m 755 $(BIN)/$$t $(DESTDIR)$(BINDIR)/$$t"; \
	    $(INSTALL) -m 755 $(BIN)/$$t $(DESTDIR)$(BINDIR)/$$t && $(STRIP) $(DESTDIR)$(BINDIR)/$$t || exit 1; \
	done
	$(INSTALL) -m 755 scripts/restore.sh $(DESTDIR)$(BINDIR)/whisper-restore
	$(INSTALL) -m 644 $(OUT)/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	@for t in $(COMMANDS); do \
	    $(INSTALL) -m 644 $(OUT)/bash/$$t $(DESTDIR)$(BASHCOMPDIR)/$$t && \
	    $(INSTALL) -m 644 $(OUT)/zsh/_$$t $(DESTDIR)$(ZSHCOMPDIR)/_$$t || exit 1; \
	done
	ln -sf whisper-backup $(DESTDIR)$(BASHCOMPDIR)/whisper-restore
	@for u in whisper-backup.service whisper-backup.timer; do \
	    sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' contrib/systemd/$$u \
	        > $(DESTDIR)$(UNITDIR)/$$u && chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	sed 's|@BINDIR@|$(BINDIR)|g' contrib/cron/whisper-backup > $(DESTDIR)$(DOCDIR)/cron.d-whisper-backup
	$(INSTALL) -m 644 contrib/default/whisper-backup $(DESTDIR)$(DOCDIR)/default-whisper-backup
	$(INSTALL) -m 644 contrib/logrotate.d/whisper-backup $(DESTDIR)$(DOCDIR)/logrotate-whisper-backup
	$(INSTALL) -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/docs
	$(INSTALL) -m 644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	$(INSTALL) -m 755 scripts/wsp-apply-delta.py $(DESTDIR)$(DOCDIR)/wsp-apply-delta.py
	@# The settings the service reads and the log rotation: created once, never overwritten.
	@for f in $(ETCFILES); do \
	    if [ ! -e $(DESTDIR)$(SYSCONFDIR)/$$f ]; then \
	        $(INSTALL) -d $(DESTDIR)$(SYSCONFDIR)/$$(dirname $$f) && \
	        $(INSTALL) -m $$(case $$f in default/*) echo 600;; *) echo 644;; esac) contrib/$$f $(DESTDIR)$(SYSCONFDIR)/$$f && \
	        echo "installed $(DESTDIR)$(SYSCONFDIR)/$$f" || exit 1; \
	    fi; \
	done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(TOOLS) whisper-backup whisper-restore)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(addsuffix .1,$(TOOLS) whisper-backup whisper-restore))
	rm -f $(addprefix $(DESTDIR)$(BASHCOMPDIR)/,$(TOOLS) whisper-backup whisper-restore)
	rm -f $(addprefix $(DESTDIR)$(ZSHCOMPDIR)/_,$(TOOLS) whisper-backup)
	rm -f $(DESTDIR)$(UNITDIR)/whisper-backup.service $(DESTDIR)$(UNITDIR)/whisper-backup.timer
	rm -rf $(DESTDIR)$(DOCDIR)
	@# Settings stay unless they are the untouched examples.
	@for f in $(ETCFILES); do \
	    if cmp -s contrib/$$f $(DESTDIR)$(SYSCONFDIR)/$$f; then \
	        rm -f $(DESTDIR)$(SYSCONFDIR)/$$f; \
	    elif [ -e $(DESTDIR)$(SYSCONFDIR)/$$f ]; then \
	        echo "kept $(DESTDIR)$(SYSCONFDIR)/$$f (edited)"; \
	    fi; \
	done

DEB_COMPRESS ?= gzip
deb: all
	bash packaging/build-deb.sh --scratch $(SCRATCH) --out dist --compress $(DEB_COMPRESS)

# The install, package and operations tests (root for the package test; scripts/deps.sh --test
# installs what they use; the carbon test runs when WSP_TEST_CARBON is set, as scripts/test.sh does).
check-install:
	$(SWIFT) build
	WSP_BIN=$(CURDIR)/.build/debug python3 -m pytest -q -p no:cacheprovider \
	    Tests/integration/test_install.py Tests/integration/test_ops.py

clean-dist:
	rm -rf $(OUT) dist
