-- AlterTable
ALTER TABLE "ProxyHost" ADD COLUMN "compression" BOOLEAN NOT NULL DEFAULT false;
